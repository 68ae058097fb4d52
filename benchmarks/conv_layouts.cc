// The convolutions of a ResNet-20 training step through oneDNN alone, with NCHW
// tensors and oneDNN's blocked layout (what ppresvar_conv2d does without its
// `nhwc` attribute: reorders around every call) against NHWC tensors taken as
// they are (with it). Prints the median of 7 steps; docs/cpu_kernels.md
// ("Channels-last") quotes it. Build against paddle's own libdnnl and the
// headers ppresvar fetched (python -m ppresvar.kernels), from the repository root:
//
//   LIBS=$(python -c "import paddle, os; print(os.path.join(os.path.dirname(paddle.__file__), 'libs'))")
//   g++ -O2 -std=c++17 benchmarks/conv_layouts.cc -I ~/.cache/ppresvar/onednn-headers-2023.2.0 \
//       -L$LIBS -l:libdnnl.so.3 -Wl,-rpath,$LIBS -o /tmp/conv_layouts
//   OMP_NUM_THREADS=2 /tmp/conv_layouts nchw; OMP_NUM_THREADS=2 /tmp/conv_layouts nhwc
#include <algorithm>
#include <string>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>
#include "oneapi/dnnl/dnnl.hpp"
using namespace dnnl;
using tag = memory::format_tag; using dt = memory::data_type;
engine eng(engine::kind::cpu, 0); stream strm(eng);
memory mk(const memory::desc& md, void* p) { dnnl_memory_t m; dnnl_memory_create(&m, md.get(), eng.get(), p); return memory(m); }
size_t bytes(const memory::desc& md) { return dnnl_memory_desc_get_size(md.get()); }
struct Buf { std::vector<float> v; Buf(size_t b=0): v(b/4+1, 0.01f) {} void* p() { return v.data(); } };
struct R { bool need=false; memory::desc f,t; std::unique_ptr<reorder> pr;
  void init(const memory::desc& a, const memory::desc& b){ f=a;t=b;need=!(a==b); if(need) pr.reset(new reorder(reorder::primitive_desc(eng,a,eng,b)));}
  void run(void* s, void* d){ if(!need) return; auto a=mk(f,s), b=mk(t,d); pr->execute(strm,{{DNNL_ARG_FROM,a},{DNNL_ARG_TO,b}});} };
struct Conv {
  convolution_forward::primitive_desc fp; convolution_backward_data::primitive_desc dp; convolution_backward_weights::primitive_desc wp;
  std::unique_ptr<convolution_forward> f; std::unique_ptr<convolution_backward_data> d; std::unique_ptr<convolution_backward_weights> w;
  R fx, fw, fy, ddy, dw_, ddx, wx, wdy, wdw;
  Buf ux, uw, uy, udy, udx, udw, s1, s2, s3, s4, s5, s6, s7, s8, s9;
  Conv(int n,int c,int h,int o,int st, tag user, tag prim) {
    int oh = (h + 2 - 3) / st + 1;
    memory::dims x{n,c,h,h}, wt{o,c,3,3}, y{n,o,oh,oh};
    memory::desc xu(x,dt::f32,user), yu(y,dt::f32,user), wu(wt,dt::f32,tag::oihw);
    memory::desc xa(x,dt::f32,prim), ya(y,dt::f32,prim), wa(wt,dt::f32,tag::any);
    fp = convolution_forward::primitive_desc(eng, prop_kind::forward_training, algorithm::convolution_direct, xa, wa, ya, {st,st},{0,0},{1,1},{1,1});
    dp = convolution_backward_data::primitive_desc(eng, algorithm::convolution_direct, xa, wa, ya, {st,st},{0,0},{1,1},{1,1}, fp);
    wp = convolution_backward_weights::primitive_desc(eng, algorithm::convolution_direct, xa, wa, ya, {st,st},{0,0},{1,1},{1,1}, fp);
    f.reset(new convolution_forward(fp)); d.reset(new convolution_backward_data(dp)); w.reset(new convolution_backward_weights(wp));
    fx.init(xu, fp.src_desc()); fw.init(wu, fp.weights_desc()); fy.init(fp.dst_desc(), yu);
    ddy.init(yu, dp.diff_dst_desc()); dw_.init(wu, dp.weights_desc()); ddx.init(dp.diff_src_desc(), xu);
    wx.init(xu, wp.src_desc()); wdy.init(yu, wp.diff_dst_desc()); wdw.init(wp.diff_weights_desc(), wu);
    ux=Buf(bytes(xu)); uw=Buf(bytes(wu)); uy=Buf(bytes(yu)); udy=Buf(bytes(yu)); udx=Buf(bytes(xu)); udw=Buf(bytes(wu));
    s1=Buf(bytes(fp.src_desc())); s2=Buf(bytes(fp.weights_desc())); s3=Buf(bytes(fp.dst_desc()));
    s4=Buf(bytes(dp.diff_dst_desc())); s5=Buf(bytes(dp.weights_desc())); s6=Buf(bytes(dp.diff_src_desc()));
    s7=Buf(bytes(wp.src_desc())); s8=Buf(bytes(wp.diff_weights_desc()));
    printf("  %dx%d %d->%d s%d: fwd %s src %s\n", h,h,c,o,st, fp.impl_info_str(), fx.need?"reorder":"plain");
  }
  void* in(R& r, Buf& u, Buf& s){ if(!r.need) return u.p(); r.run(u.p(), s.p()); return s.p(); }
  void step() {
    void* xp = in(fx, ux, s1); void* wpp = in(fw, uw, s2); void* yp = fy.need ? s3.p() : uy.p();
    f->execute(strm, {{DNNL_ARG_SRC, mk(fp.src_desc(), xp)}, {DNNL_ARG_WEIGHTS, mk(fp.weights_desc(), wpp)}, {DNNL_ARG_DST, mk(fp.dst_desc(), yp)}});
    fy.run(yp, uy.p());
    void* dyp = in(ddy, udy, s4); void* w2 = in(dw_, uw, s5); void* dxp = ddx.need ? s6.p() : udx.p();
    d->execute(strm, {{DNNL_ARG_DIFF_DST, mk(dp.diff_dst_desc(), dyp)}, {DNNL_ARG_WEIGHTS, mk(dp.weights_desc(), w2)}, {DNNL_ARG_DIFF_SRC, mk(dp.diff_src_desc(), dxp)}});
    ddx.run(dxp, udx.p());
    void* x2 = in(wx, ux, s7); void* dwp = wdw.need ? s8.p() : udw.p();
    w->execute(strm, {{DNNL_ARG_SRC, mk(wp.src_desc(), x2)}, {DNNL_ARG_DIFF_DST, mk(wp.diff_dst_desc(), dyp)}, {DNNL_ARG_DIFF_WEIGHTS, mk(wp.diff_weights_desc(), dwp)}});
    wdw.run(dwp, udw.p());
    strm.wait();
  }
};
int main(int argc, char** argv) {
  int n = argc > 2 ? atoi(argv[2]) : 128; bool nhwc = argc > 1 && std::string(argv[1]) == "nhwc";
  tag user = nhwc ? tag::nhwc : tag::nchw, prim = nhwc ? tag::nhwc : tag::any;
  struct S { int c,h,o,st,count; } shapes[] = {{3,32,16,1,1},{16,32,16,1,6},{16,32,32,2,1},{32,16,32,1,5},{32,16,64,2,1},{64,8,64,1,5}};
  std::vector<std::unique_ptr<Conv>> convs; std::vector<int> counts;
  for (auto& s: shapes) { convs.emplace_back(new Conv(n,s.c,s.h,s.o,s.st,user,prim)); counts.push_back(s.count); }
  for (int r=0;r<2;r++) for (size_t i=0;i<convs.size();i++) convs[i]->step();
  std::vector<double> ts;
  for (int r=0;r<7;r++) { auto t0=std::chrono::steady_clock::now();
    for (size_t i=0;i<convs.size();i++) for(int k=0;k<counts[i];k++) convs[i]->step();
    ts.push_back(std::chrono::duration<double,std::milli>(std::chrono::steady_clock::now()-t0).count()); }
  std::sort(ts.begin(), ts.end());
  printf("%s: resnet20 convs fwd+bwd, batch %d: median %.1f ms (min %.1f)\n", nhwc?"nhwc":"nchw+any", n, ts[3], ts[0]);
}
