// Small CPU operators for paddle's eager autograd (see kernels/__init__.py).
//
// ppresvar_shortcut_a: the option-A shortcut of He et al. 2015 (subsample
// by `stride`, append `pad` zero channels) in one pass each way. paddle's
// strided-slice gradient took ~5 ms for a 64x16x32x32 input here, as much
// as a convolution. NCHW, or channels-last NHWC with the `nhwc` attribute.
#include <cstring>
#include <vector>

#include "paddle/extension.h"

namespace {

int64_t sub(int64_t n, int64_t s) { return (n - 1) / s + 1; }

}  // namespace

// NHWC: each output position is the input's at (y*stride, x*stride), its C
// channels then `pad` zeros.
std::vector<paddle::Tensor> ShortcutANhwcForward(const paddle::Tensor& x, int stride, int pad) {
  auto s = x.shape();
  const int64_t n = s[0], h = s[1], w = s[2], c = s[3], oh = sub(h, stride), ow = sub(w, stride);
  auto out = paddle::empty({n, oh, ow, c + pad}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* src = x.data<float>();
  float* dst = out.data<float>();
#pragma omp parallel for
  for (int64_t r = 0; r < n * oh; ++r) {
    const int64_t b = r / oh, y = r % oh;
    for (int64_t xx = 0; xx < ow; ++xx) {
      float* o = dst + (r * ow + xx) * (c + pad);
      std::memcpy(o, src + ((b * h + y * stride) * w + xx * stride) * c, sizeof(float) * c);
      std::memset(o + c, 0, sizeof(float) * pad);
    }
  }
  return {out};
}

std::vector<paddle::Tensor> ShortcutANhwcBackward(const paddle::Tensor& x, const paddle::Tensor& dout, int stride,
                                                  int pad) {
  auto s = x.shape();
  const int64_t n = s[0], h = s[1], w = s[2], c = s[3], oh = sub(h, stride), ow = sub(w, stride);
  auto dx = paddle::empty({n, h, w, c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* g = dout.data<float>();
  float* d = dx.data<float>();
#pragma omp parallel for
  for (int64_t r = 0; r < n * h; ++r) {
    const int64_t b = r / h, y = r % h;
    float* o = d + r * w * c;
    if (y % stride) {
      std::memset(o, 0, sizeof(float) * w * c);
      continue;
    }
    for (int64_t xx = 0; xx < w; ++xx) {
      if (xx % stride) {
        std::memset(o + xx * c, 0, sizeof(float) * c);
      } else {
        std::memcpy(o + xx * c, g + ((b * oh + y / stride) * ow + xx / stride) * (c + pad), sizeof(float) * c);
      }
    }
  }
  return {dx};
}

std::vector<paddle::Tensor> ShortcutAForward(const paddle::Tensor& x, int stride, int pad, bool nhwc) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "ppresvar_shortcut_a: CPU float32 only");
  if (nhwc) return ShortcutANhwcForward(x, stride, pad);
  auto s = x.shape();
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3], oh = sub(h, stride), ow = sub(w, stride);
  auto out = paddle::empty({n, c + pad, oh, ow}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* src = x.data<float>();
  float* dst = out.data<float>();
#pragma omp parallel for
  for (int64_t p = 0; p < n * (c + pad); ++p) {
    const int64_t b = p / (c + pad), ch = p % (c + pad);
    float* o = dst + p * oh * ow;
    if (ch >= c) {
      std::memset(o, 0, sizeof(float) * oh * ow);
      continue;
    }
    const float* i = src + (b * c + ch) * h * w;
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t xx = 0; xx < ow; ++xx) o[y * ow + xx] = i[y * stride * w + xx * stride];
  }
  return {out};
}

std::vector<paddle::Tensor> ShortcutABackward(const paddle::Tensor& x, const paddle::Tensor& dout, int stride,
                                              int pad, bool nhwc) {
  if (nhwc) return ShortcutANhwcBackward(x, dout, stride, pad);
  auto s = x.shape();
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3], oh = sub(h, stride), ow = sub(w, stride);
  auto dx = paddle::empty({n, c, h, w}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* g = dout.data<float>();
  float* d = dx.data<float>();
#pragma omp parallel for
  for (int64_t p = 0; p < n * c; ++p) {
    const int64_t b = p / c, ch = p % c;
    float* o = d + p * h * w;
    const float* i = g + (b * (c + pad) + ch) * oh * ow;
    if (stride == 1) {
      std::memcpy(o, i, sizeof(float) * h * w);
      continue;
    }
    std::memset(o, 0, sizeof(float) * h * w);
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t xx = 0; xx < ow; ++xx) o[y * stride * w + xx * stride] = i[y * ow + xx];
  }
  return {dx};
}

std::vector<std::vector<int64_t>> ShortcutAShape(const std::vector<int64_t>& x, int stride, int pad, bool nhwc) {
  if (nhwc) return {{x[0], sub(x[1], stride), sub(x[2], stride), x[3] + pad}};
  return {{x[0], x[1] + pad, sub(x[2], stride), sub(x[3], stride)}};
}

std::vector<paddle::DataType> ShortcutADtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(ppresvar_shortcut_a)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"stride: int", "pad: int", "nhwc: bool"})
    .SetKernelFn(PD_KERNEL(ShortcutAForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ShortcutAShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ShortcutADtype));

PD_BUILD_GRAD_OP(ppresvar_shortcut_a)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"stride: int", "pad: int", "nhwc: bool"})
    .SetKernelFn(PD_KERNEL(ShortcutABackward));
