// 2-D convolution for Paddle's eager autograd on CPU, through oneDNN.
//
// Paddle's CPU wheel ships oneDNN's library (libdnnl.so.3) but eager mode
// runs paddle's own convolution kernels; these operators run forward,
// backward-data and backward-weights (+ bias) through that library instead.
// See ppresvar/kernels/__init__.py for how they are built and dispatched.
//
// Weights are plain OIHW float32 (what paddle holds).  Activations are plain
// NCHW, each primitive then picking its own layout (format "any", a blocked
// one) with reorders to and from it; or, with the `nhwc` attribute,
// channels-last NHWC tensors ([N, H, W, C]) that the primitives take as they
// are (format nhwc), so that a network kept channels-last between its layers
// runs no activation reorder at all.  Primitives are cached per shape.
//
// Only C calls that paddle's library exports are used: the C++ wrappers of
// newer headers call `_v2` functions (dnnl_memory_create_v2, ...) that it
// lacks, so memory objects are created through dnnl_memory_create.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "paddle/extension.h"

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& cpu_stream() {
  static dnnl::stream s(cpu_engine());
  return s;
}

memory make_memory(const memory::desc& md, void* ptr) {
  dnnl_memory_t m = nullptr;
  dnnl::error::wrap_c_api(dnnl_memory_create(&m, md.get(), cpu_engine().get(), ptr),
                          "could not create a memory object");
  return memory(m);
}

size_t byte_size(const memory::desc& md) { return dnnl_memory_desc_get_size(md.get()); }

// Activation layout asked of the primitives: "any" (oneDNN's choice, the
// default), "nhwc" or "nchw"; PPRESVAR_ONEDNN_LAYOUT, read once.
tag activation_tag() {
  static tag t = [] {
    const char* v = std::getenv("PPRESVAR_ONEDNN_LAYOUT");
    std::string s = v ? v : "any";
    if (s == "nhwc") return tag::nhwc;
    if (s == "nchw") return tag::nchw;
    return tag::any;
  }();
  return t;
}

// A buffer in a layout of oneDNN's choosing, allocated through paddle (whose
// allocator caches blocks, so a step allocates nothing new from the system).
struct Scratch {
  paddle::Tensor holder;
  void* data = nullptr;
};

Scratch scratch(const memory::desc& md) {
  Scratch s;
  int64_t n = static_cast<int64_t>((byte_size(md) + sizeof(float) - 1) / sizeof(float));
  s.holder = paddle::empty({n > 0 ? n : 1}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  s.data = s.holder.data<float>();
  return s;
}

// Reorder plain user memory <-> a primitive's layout; no-op when equal.
struct Reorder {
  bool needed = false;
  memory::desc from, to;
  std::unique_ptr<dnnl::reorder> prim;

  void init(const memory::desc& f, const memory::desc& t) {
    from = f;
    to = t;
    needed = !(f == t);
    if (needed) {
      dnnl::reorder::primitive_desc pd(cpu_engine(), f, cpu_engine(), t);
      prim.reset(new dnnl::reorder(pd));
    }
  }
  void run(void* src, void* dst) {
    memory a = make_memory(from, src), b = make_memory(to, dst);
    prim->execute(cpu_stream(), {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}});
  }
};

// Input in the primitive's layout: the user's pointer, or a reordered copy.
void* as_layout(Reorder& r, const void* user, Scratch& keep) {
  if (!r.needed) return const_cast<void*>(user);
  keep = scratch(r.to);
  r.run(const_cast<void*>(user), keep.data);
  return keep.data;
}

struct ConvShape {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int64_t sh, sw, ph, pw, dh, dw;
  bool bias, nhwc;

  std::string key() const {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%d,%d", (long)n,
                  (long)c, (long)h, (long)w, (long)o, (long)kh, (long)kw, (long)sh, (long)sw,
                  (long)ph, (long)pw, (long)(dh * 1000 + dw), bias ? 1 : 0, nhwc ? 1 : 0);
    return buf;
  }
  std::vector<int64_t> x_shape() const {
    return nhwc ? std::vector<int64_t>{n, h, w, c} : std::vector<int64_t>{n, c, h, w};
  }
  std::vector<int64_t> y_shape() const {
    return nhwc ? std::vector<int64_t>{n, oh, ow, o} : std::vector<int64_t>{n, o, oh, ow};
  }
};

struct ConvPrims {
  memory::desc x_user, w_user, y_user, b_md;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  std::unique_ptr<dnnl::convolution_forward> fwd;
  std::unique_ptr<dnnl::convolution_backward_data> bwd_data;
  std::unique_ptr<dnnl::convolution_backward_weights> bwd_weights;
  // forward
  Reorder f_x, f_w, f_y;
  // backward data
  Reorder d_dy, d_w, d_dx;
  // backward weights
  Reorder w_x, w_dy, w_dw;
  bool backward_ready = false;

  explicit ConvPrims(const ConvShape& s) {
    memory::dims x{s.n, s.c, s.h, s.w}, wt{s.o, s.c, s.kh, s.kw}, y{s.n, s.o, s.oh, s.ow}, b{s.o};
    memory::dims strides{s.sh, s.sw}, dil{s.dh - 1, s.dw - 1}, pad{s.ph, s.pw};
    tag user = s.nhwc ? tag::nhwc : tag::nchw;
    x_user = memory::desc(x, dt::f32, user);
    w_user = memory::desc(wt, dt::f32, tag::oihw);
    y_user = memory::desc(y, dt::f32, user);
    b_md = memory::desc(b, dt::f32, tag::x);
    tag act = s.nhwc ? tag::nhwc : activation_tag();
    memory::desc x_any(x, dt::f32, act), y_any(y, dt::f32, act), w_any(wt, dt::f32, tag::any);
    auto prop = dnnl::prop_kind::forward_training;
    auto alg = dnnl::algorithm::convolution_direct;
    if (s.bias) {
      fwd_pd = dnnl::convolution_forward::primitive_desc(cpu_engine(), prop, alg, x_any, w_any, b_md,
                                                         y_any, strides, dil, pad, pad);
    } else {
      fwd_pd = dnnl::convolution_forward::primitive_desc(cpu_engine(), prop, alg, x_any, w_any, y_any,
                                                         strides, dil, pad, pad);
    }
    fwd.reset(new dnnl::convolution_forward(fwd_pd));
    f_x.init(x_user, fwd_pd.src_desc());
    f_w.init(w_user, fwd_pd.weights_desc());
    f_y.init(fwd_pd.dst_desc(), y_user);
    bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(cpu_engine(), alg, x_any, w_any, y_any,
                                                                  strides, dil, pad, pad, fwd_pd);
    if (s.bias) {
      bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(
          cpu_engine(), alg, x_any, w_any, b_md, y_any, strides, dil, pad, pad, fwd_pd);
    } else {
      bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(
          cpu_engine(), alg, x_any, w_any, y_any, strides, dil, pad, pad, fwd_pd);
    }
  }

  void init_backward() {
    if (backward_ready) return;
    bwd_data.reset(new dnnl::convolution_backward_data(bwd_data_pd));
    bwd_weights.reset(new dnnl::convolution_backward_weights(bwd_weights_pd));
    d_dy.init(y_user, bwd_data_pd.diff_dst_desc());
    d_w.init(w_user, bwd_data_pd.weights_desc());
    d_dx.init(bwd_data_pd.diff_src_desc(), x_user);
    w_x.init(x_user, bwd_weights_pd.src_desc());
    w_dy.init(y_user, bwd_weights_pd.diff_dst_desc());
    w_dw.init(bwd_weights_pd.diff_weights_desc(), w_user);
    backward_ready = true;
  }
};

std::mutex cache_mutex;

ConvPrims& prims_for(const ConvShape& s) {
  static std::unordered_map<std::string, std::unique_ptr<ConvPrims>> cache;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& slot = cache[s.key()];
  if (!slot) slot.reset(new ConvPrims(s));
  return *slot;
}

int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

ConvShape shape_of(const paddle::Tensor& x, const paddle::Tensor& w, const std::vector<int>& strides,
                   const std::vector<int>& paddings, const std::vector<int>& dilations, bool bias, bool nhwc) {
  PD_CHECK(x.shape().size() == 4, "ppresvar_conv2d: input must be NCHW or NHWC");
  PD_CHECK(w.shape().size() == 4, "ppresvar_conv2d: weight must be OIHW");
  PD_CHECK(x.shape()[nhwc ? 3 : 1] == w.shape()[1], "ppresvar_conv2d: input channels differ from the weight's");
  PD_CHECK(strides.size() == 2 && paddings.size() == 2 && dilations.size() == 2,
           "ppresvar_conv2d: strides, paddings and dilations take 2 values");
  ConvShape s;
  s.nhwc = nhwc;
  s.n = x.shape()[0];
  s.c = x.shape()[nhwc ? 3 : 1];
  s.h = x.shape()[nhwc ? 1 : 2];
  s.w = x.shape()[nhwc ? 2 : 3];
  s.o = w.shape()[0];
  s.kh = w.shape()[2];
  s.kw = w.shape()[3];
  s.sh = strides[0];
  s.sw = strides[1];
  s.ph = paddings[0];
  s.pw = paddings[1];
  s.dh = dilations[0];
  s.dw = dilations[1];
  s.oh = out_size(s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = out_size(s.w, s.kw, s.sw, s.pw, s.dw);
  s.bias = bias;
  return s;
}

void check_cpu_f32(const paddle::Tensor& t, const char* name) {
  PD_CHECK(t.is_cpu(), "ppresvar_conv2d: ", name, " must be on the CPU");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, "ppresvar_conv2d: ", name, " must be float32");
}

paddle::Tensor forward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor* b,
                       const std::vector<int>& strides, const std::vector<int>& paddings,
                       const std::vector<int>& dilations, bool nhwc) {
  check_cpu_f32(x, "input");
  check_cpu_f32(w, "weight");
  ConvShape s = shape_of(x, w, strides, paddings, dilations, b != nullptr, nhwc);
  ConvPrims& p = prims_for(s);
  auto y = paddle::empty(s.y_shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  Scratch xs, ws, ys;
  void* xp = as_layout(p.f_x, x.data<float>(), xs);
  void* wp = as_layout(p.f_w, w.data<float>(), ws);
  void* yp = y.data<float>();
  if (p.f_y.needed) {
    ys = scratch(p.f_y.from);
    yp = ys.data;
  }
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, make_memory(p.fwd_pd.src_desc(), xp)},
                                       {DNNL_ARG_WEIGHTS, make_memory(p.fwd_pd.weights_desc(), wp)},
                                       {DNNL_ARG_DST, make_memory(p.fwd_pd.dst_desc(), yp)}};
  if (b) args.insert({DNNL_ARG_BIAS, make_memory(p.b_md, const_cast<float*>(b->data<float>()))});
  p.fwd->execute(cpu_stream(), args);
  if (p.f_y.needed) p.f_y.run(yp, y.data<float>());
  return y;
}

std::vector<paddle::Tensor> backward(const paddle::Tensor& x, const paddle::Tensor& w,
                                     const paddle::Tensor& dy, bool bias, bool need_dx,
                                     const std::vector<int>& strides, const std::vector<int>& paddings,
                                     const std::vector<int>& dilations, bool nhwc) {
  ConvShape s = shape_of(x, w, strides, paddings, dilations, bias, nhwc);
  ConvPrims& p = prims_for(s);
  p.init_backward();
  auto dy_c = dy;
  std::vector<paddle::Tensor> out;

  // d input
  auto dx = paddle::empty(s.x_shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  Scratch dys_d;
  void* dyp_d = nullptr;
  if (need_dx) {
    Scratch ws, dxs;
    dyp_d = as_layout(p.d_dy, dy_c.data<float>(), dys_d);
    void* wp = as_layout(p.d_w, w.data<float>(), ws);
    void* dxp = dx.data<float>();
    if (p.d_dx.needed) {
      dxs = scratch(p.d_dx.from);
      dxp = dxs.data;
    }
    p.bwd_data->execute(cpu_stream(), {{DNNL_ARG_DIFF_DST, make_memory(p.bwd_data_pd.diff_dst_desc(), dyp_d)},
                                       {DNNL_ARG_WEIGHTS, make_memory(p.bwd_data_pd.weights_desc(), wp)},
                                       {DNNL_ARG_DIFF_SRC, make_memory(p.bwd_data_pd.diff_src_desc(), dxp)}});
    if (p.d_dx.needed) p.d_dx.run(dxp, dx.data<float>());
  } else {
    std::memset(dx.data<float>(), 0, sizeof(float) * s.n * s.c * s.h * s.w);
  }
  out.push_back(dx);

  // d weight (+ d bias)
  auto dw = paddle::empty({s.o, s.c, s.kh, s.kw}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  Scratch xs, dys_w, dws;
  void* xp = as_layout(p.w_x, x.data<float>(), xs);
  void* dyp_w;
  if (need_dx && p.w_dy.to == p.d_dy.to) {
    dyp_w = dyp_d;  // the same layout: reorder dy once
  } else {
    dyp_w = as_layout(p.w_dy, dy_c.data<float>(), dys_w);
  }
  void* dwp = dw.data<float>();
  if (p.w_dw.needed) {
    dws = scratch(p.w_dw.from);
    dwp = dws.data;
  }
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, make_memory(p.bwd_weights_pd.src_desc(), xp)},
      {DNNL_ARG_DIFF_DST, make_memory(p.bwd_weights_pd.diff_dst_desc(), dyp_w)},
      {DNNL_ARG_DIFF_WEIGHTS, make_memory(p.bwd_weights_pd.diff_weights_desc(), dwp)}};
  paddle::Tensor db;
  if (bias) {
    db = paddle::empty({s.o}, paddle::DataType::FLOAT32, paddle::CPUPlace());
    args.insert({DNNL_ARG_DIFF_BIAS, make_memory(p.b_md, db.data<float>())});
  }
  p.bwd_weights->execute(cpu_stream(), args);
  if (p.w_dw.needed) p.w_dw.run(dwp, dw.data<float>());
  out.push_back(dw);
  if (bias) out.push_back(db);
  return out;
}

}  // namespace

std::vector<paddle::Tensor> ConvForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                        const std::vector<int>& strides, const std::vector<int>& paddings,
                                        const std::vector<int>& dilations, bool need_dx, bool nhwc) {
  return {forward(x, w, nullptr, strides, paddings, dilations, nhwc)};
}

std::vector<paddle::Tensor> ConvBiasForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                            const paddle::Tensor& b, const std::vector<int>& strides,
                                            const std::vector<int>& paddings,
                                            const std::vector<int>& dilations, bool need_dx, bool nhwc) {
  check_cpu_f32(b, "bias");
  return {forward(x, w, &b, strides, paddings, dilations, nhwc)};
}

std::vector<paddle::Tensor> ConvBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                         const paddle::Tensor& dy, const std::vector<int>& strides,
                                         const std::vector<int>& paddings,
                                         const std::vector<int>& dilations, bool need_dx, bool nhwc) {
  return backward(x, w, dy, false, need_dx, strides, paddings, dilations, nhwc);
}

std::vector<paddle::Tensor> ConvBiasBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                             const paddle::Tensor& dy, const std::vector<int>& strides,
                                             const std::vector<int>& paddings,
                                             const std::vector<int>& dilations, bool need_dx, bool nhwc) {
  return backward(x, w, dy, true, need_dx, strides, paddings, dilations, nhwc);
}

std::vector<std::vector<int64_t>> ConvShapeFn(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                              const std::vector<int>& strides,
                                              const std::vector<int>& paddings,
                                              const std::vector<int>& dilations, bool need_dx, bool nhwc) {
  const int64_t oh = out_size(x[nhwc ? 1 : 2], w[2], strides[0], paddings[0], dilations[0]);
  const int64_t ow = out_size(x[nhwc ? 2 : 3], w[3], strides[1], paddings[1], dilations[1]);
  if (nhwc) return {{x[0], oh, ow, w[0]}};
  return {{x[0], w[0], oh, ow}};
}

std::vector<std::vector<int64_t>> ConvBiasShapeFn(const std::vector<int64_t>& x,
                                                  const std::vector<int64_t>& w,
                                                  const std::vector<int64_t>& b,
                                                  const std::vector<int>& strides,
                                                  const std::vector<int>& paddings,
                                                  const std::vector<int>& dilations, bool need_dx, bool nhwc) {
  return ConvShapeFn(x, w, strides, paddings, dilations, need_dx, nhwc);
}

std::vector<paddle::DataType> ConvDtype(const paddle::DataType& x, const paddle::DataType& w) { return {x}; }
std::vector<paddle::DataType> ConvBiasDtype(const paddle::DataType& x, const paddle::DataType& w,
                                            const paddle::DataType& b) {
  return {x};
}

std::vector<std::vector<int64_t>> ConvGradShapeFn(const std::vector<int64_t>& x,
                                                  const std::vector<int64_t>& w,
                                                  const std::vector<int64_t>& dy) {
  return {x, w};
}
std::vector<std::vector<int64_t>> ConvBiasGradShapeFn(const std::vector<int64_t>& x,
                                                      const std::vector<int64_t>& w,
                                                      const std::vector<int64_t>& dy) {
  return {x, w, {w[0]}};
}

#define PPRESVAR_CONV_ATTRS {"strides: std::vector<int>", "paddings: std::vector<int>", \
                             "dilations: std::vector<int>", "need_dx: bool", "nhwc: bool"}

PD_BUILD_OP(ppresvar_conv2d)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .Attrs(PPRESVAR_CONV_ATTRS)
    .SetKernelFn(PD_KERNEL(ConvForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ConvShapeFn))
    .SetInferDtypeFn(PD_INFER_DTYPE(ConvDtype));

PD_BUILD_GRAD_OP(ppresvar_conv2d)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .Attrs(PPRESVAR_CONV_ATTRS)
    .SetKernelFn(PD_KERNEL(ConvBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(ConvGradShapeFn));

PD_BUILD_OP(ppresvar_conv2d_bias)
    .Inputs({"X", "W", "B"})
    .Outputs({"Out"})
    .Attrs(PPRESVAR_CONV_ATTRS)
    .SetKernelFn(PD_KERNEL(ConvBiasForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ConvBiasShapeFn))
    .SetInferDtypeFn(PD_INFER_DTYPE(ConvBiasDtype));

PD_BUILD_GRAD_OP(ppresvar_conv2d_bias)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")})
    .Attrs(PPRESVAR_CONV_ATTRS)
    .SetKernelFn(PD_KERNEL(ConvBiasBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(ConvBiasGradShapeFn));
