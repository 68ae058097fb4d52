// Multi-threaded CPU operators for the training step (see kernels/__init__.py).
//
// paddle's eager CPU kernels for batch norm, ReLU and additions run on one
// thread; these run on every OpenMP thread, and fuse what follows a batch
// norm in a ResNet block into the same pass over memory:
//
//   ppresvar_bn_act:     y = act(bn(x))             (act: ReLU or identity)
//   ppresvar_bn_add_act: y = act(bn(x) + residual)
//   ppresvar_dyrelu:     y = max_k (a_k x + b_k)    (Dynamic ReLU's apply)
//   ppresvar_nam_gate:   y = sigmoid(z * w_c) * x   (NAM's channel attention)
//   ppresvar_channel_mean: y[n, c] = mean of x[n, c] (the global average pool)
//   ppresvar_add_relu:   y = max(a + b, 0)          (a block's last addition and
//                                                    ReLU where no BN precedes it:
//                                                    after NAM, SE or drop path)
//
// bn is training-mode batch norm over (N, H, W) per channel, NCHW or (with
// the `nhwc` attribute) channels-last NHWC:
// xhat = (x - mean) * invstd, invstd = 1 / sqrt(var + eps), var biased, and
// y = scale * xhat + bias. Every reduction runs in one fixed order per
// channel (per image for DyReLU) whatever the thread count (batch norm, NCHW:
// each image's H*W row summed in float, vectorised, the rows added in double;
// NHWC: each run of kRows positions summed in float, vectorised across the
// channels, the runs added in double in their order), so results do not
// depend on the number of threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "paddle/extension.h"

namespace {

struct Dims {
  int64_t n, c, hw;
};

Dims dims_of(const paddle::Tensor& x) {
  auto s = x.shape();
  int64_t hw = 1;
  for (size_t i = 2; i < s.size(); ++i) hw *= s[i];
  return {s[0], s[1], hw};
}

void check(const paddle::Tensor& t, const char* what) {
  PD_CHECK(t.is_cpu() && t.dtype() == paddle::DataType::FLOAT32, what, ": CPU float32 only");
}

// Per channel: mean and biased variance (two passes), then y.
void bn_forward(const float* x, const float* scale, const float* bias, const float* res, bool relu, float eps,
                Dims d, float* y, float* mean_out, float* var_out) {
  const double m = static_cast<double>(d.n * d.hw);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.c; ++c) {
    double sum = 0.0;
    for (int64_t b = 0; b < d.n; ++b) {
      const float* p = x + (b * d.c + c) * d.hw;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < d.hw; ++i) s += p[i];
      sum += s;
    }
    const double mean = sum / m;
    const float mf = static_cast<float>(mean);
    double sq = 0.0;
    for (int64_t b = 0; b < d.n; ++b) {
      const float* p = x + (b * d.c + c) * d.hw;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < d.hw; ++i) s += (p[i] - mf) * (p[i] - mf);
      sq += s;
    }
    const double var = sq / m;
    mean_out[c] = mf;
    var_out[c] = static_cast<float>(var);
    const float k = scale[c] / static_cast<float>(std::sqrt(var + eps));
    const float off = bias[c] - mf * k;
    for (int64_t b = 0; b < d.n; ++b) {
      const int64_t o = (b * d.c + c) * d.hw;
      const float* p = x + o;
      float* q = y + o;
      const float* r = res ? res + o : nullptr;
      if (r && relu) {
#pragma omp simd
        for (int64_t i = 0; i < d.hw; ++i) q[i] = std::max(p[i] * k + off + r[i], 0.0f);
      } else if (r) {
#pragma omp simd
        for (int64_t i = 0; i < d.hw; ++i) q[i] = p[i] * k + off + r[i];
      } else if (relu) {
#pragma omp simd
        for (int64_t i = 0; i < d.hw; ++i) q[i] = std::max(p[i] * k + off, 0.0f);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < d.hw; ++i) q[i] = p[i] * k + off;
      }
    }
  }
}

// g = dy (times y > 0 after a ReLU); dbias = sum g; dscale = sum g xhat;
// dx = scale invstd (g - dbias / M - xhat dscale / M); dres = g.
void bn_backward(const float* x, const float* scale, const float* y, const float* mean, const float* var,
                 const float* dy, bool relu, float eps, Dims d, float* dx, float* dscale, float* dbias,
                 float* dres) {
  const double m = static_cast<double>(d.n * d.hw);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.c; ++c) {
    const float mf = mean[c];
    double sg = 0.0, sgx = 0.0;
    for (int64_t b = 0; b < d.n; ++b) {
      const int64_t o = (b * d.c + c) * d.hw;
      const float *p = x + o, *g = dy + o, *q = y + o;
      float s = 0.0f, t = 0.0f;
      if (relu) {
#pragma omp simd reduction(+ : s, t)
        for (int64_t i = 0; i < d.hw; ++i) {
          const float gv = g[i];  // loaded first, so that the select vectorizes
          const float gi = q[i] > 0.0f ? gv : 0.0f;
          s += gi;
          t += gi * (p[i] - mf);
        }
      } else {
#pragma omp simd reduction(+ : s, t)
        for (int64_t i = 0; i < d.hw; ++i) {
          s += g[i];
          t += g[i] * (p[i] - mf);
        }
      }
      sg += s;
      sgx += t;
    }
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    dbias[c] = static_cast<float>(sg);
    dscale[c] = static_cast<float>(sgx * invstd);
    const float k = static_cast<float>(scale[c] * invstd);
    const float a = static_cast<float>(sg / m);
    const float bx = static_cast<float>(sgx * invstd * invstd / m);
    for (int64_t b = 0; b < d.n; ++b) {
      const int64_t o = (b * d.c + c) * d.hw;
      const float *p = x + o, *g = dy + o, *q = y + o;
      float* r = dx + o;
      float* rr = dres ? dres + o : nullptr;
      if (relu) {
#pragma omp simd
        for (int64_t i = 0; i < d.hw; ++i) {
          const float gv = g[i];
          const float gi = q[i] > 0.0f ? gv : 0.0f;
          r[i] = k * (gi - a - (p[i] - mf) * bx);
        }
        if (rr) {
#pragma omp simd
          for (int64_t i = 0; i < d.hw; ++i) {
            const float gv = g[i];
            rr[i] = q[i] > 0.0f ? gv : 0.0f;
          }
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < d.hw; ++i) r[i] = k * (g[i] - a - (p[i] - mf) * bx);
        if (rr) std::copy(g, g + d.hw, rr);
      }
    }
  }
}

// ---- channels-last (NHWC): rows of C channels, M = N*H*W rows.
constexpr int64_t kRows = 64;  // rows per partial sum: fixed, so the order is too

struct RowDims {
  int64_t m, c;
};

RowDims row_dims(const paddle::Tensor& x) {
  auto s = x.shape();
  int64_t m = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) m *= s[i];
  return {m, s.back()};
}

int64_t chunks(RowDims d) { return (d.m + kRows - 1) / kRows; }

// out[c] = sum over rows of f(row, c), as float sums over each run of kRows
// rows (filled by `fill`, in parallel) added in double in the runs' order.
template <typename Fill>
void chunked_sums(RowDims d, int parts, Fill fill, std::vector<double>* out) {
  const int64_t nc = chunks(d);
  std::vector<float> partial(static_cast<size_t>(nc * parts * d.c), 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < nc; ++k) {
    fill(k * kRows, std::min(d.m, (k + 1) * kRows), partial.data() + k * parts * d.c);
  }
  for (int j = 0; j < parts; ++j) out[j].assign(static_cast<size_t>(d.c), 0.0);
  for (int64_t k = 0; k < nc; ++k)
    for (int j = 0; j < parts; ++j) {
      const float* p = partial.data() + (k * parts + j) * d.c;
      double* o = out[j].data();
      for (int64_t c = 0; c < d.c; ++c) o[c] += p[c];
    }
}

void bn_forward_nhwc(const float* x, const float* scale, const float* bias, const float* res, bool relu,
                     float eps, RowDims d, float* y, float* mean_out, float* var_out) {
  const int64_t C = d.c;
  const double m = static_cast<double>(d.m);
  std::vector<double> sum[1], sq[1];
  chunked_sums(d, 1, [&](int64_t r0, int64_t r1, float* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* p = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) acc[c] += p[c];
    }
  }, sum);
  std::vector<float> mf(C), k(C), off(C);
  for (int64_t c = 0; c < C; ++c) mf[c] = static_cast<float>(sum[0][c] / m);
  const float* mp = mf.data();
  chunked_sums(d, 1, [&](int64_t r0, int64_t r1, float* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* p = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) acc[c] += (p[c] - mp[c]) * (p[c] - mp[c]);
    }
  }, sq);
  for (int64_t c = 0; c < C; ++c) {
    const double var = sq[0][c] / m;
    mean_out[c] = mf[c];
    var_out[c] = static_cast<float>(var);
    k[c] = scale[c] / static_cast<float>(std::sqrt(var + eps));
    off[c] = bias[c] - mf[c] * k[c];
  }
  const float *kp = k.data(), *op = off.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const float* p = x + r * C;
    float* q = y + r * C;
    const float* rr = res ? res + r * C : nullptr;
    if (rr && relu) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) q[c] = std::max(p[c] * kp[c] + op[c] + rr[c], 0.0f);
    } else if (rr) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) q[c] = p[c] * kp[c] + op[c] + rr[c];
    } else if (relu) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) q[c] = std::max(p[c] * kp[c] + op[c], 0.0f);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) q[c] = p[c] * kp[c] + op[c];
    }
  }
}

void bn_backward_nhwc(const float* x, const float* scale, const float* y, const float* mean, const float* var,
                      const float* dy, bool relu, float eps, RowDims d, float* dx, float* dscale, float* dbias,
                      float* dres) {
  const int64_t C = d.c;
  const double m = static_cast<double>(d.m);
  std::vector<double> sums[2];
  chunked_sums(d, 2, [&](int64_t r0, int64_t r1, float* acc) {
    float *s = acc, *t = acc + C;
    for (int64_t r = r0; r < r1; ++r) {
      const float *p = x + r * C, *g = dy + r * C, *q = y + r * C;
      if (relu) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float gv = g[c];
          const float gi = q[c] > 0.0f ? gv : 0.0f;
          s[c] += gi;
          t[c] += gi * (p[c] - mean[c]);
        }
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          s[c] += g[c];
          t[c] += g[c] * (p[c] - mean[c]);
        }
      }
    }
  }, sums);
  std::vector<float> k(C), a(C), bx(C);
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    dbias[c] = static_cast<float>(sums[0][c]);
    dscale[c] = static_cast<float>(sums[1][c] * invstd);
    k[c] = static_cast<float>(scale[c] * invstd);
    a[c] = static_cast<float>(sums[0][c] / m);
    bx[c] = static_cast<float>(sums[1][c] * invstd * invstd / m);
  }
  const float *kp = k.data(), *ap = a.data(), *bp = bx.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const float *p = x + r * C, *g = dy + r * C, *q = y + r * C;
    float* o = dx + r * C;
    float* rr = dres ? dres + r * C : nullptr;
    if (relu) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float gv = g[c];
        const float gi = q[c] > 0.0f ? gv : 0.0f;
        o[c] = kp[c] * (gi - ap[c] - (p[c] - mean[c]) * bp[c]);
      }
      if (rr) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float gv = g[c];
          rr[c] = q[c] > 0.0f ? gv : 0.0f;
        }
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = kp[c] * (g[c] - ap[c] - (p[c] - mean[c]) * bp[c]);
      if (rr) std::copy(g, g + C, rr);
    }
  }
}

int64_t channels(const paddle::Tensor& x, bool nhwc) { return nhwc ? x.shape().back() : x.shape()[1]; }

paddle::Tensor like(const paddle::Tensor& x) {
  return paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
}

std::vector<paddle::Tensor> bn_forward_op(const paddle::Tensor& x, const paddle::Tensor& scale,
                                          const paddle::Tensor& bias, const paddle::Tensor* res, float eps,
                                          bool relu, bool nhwc) {
  check(x, "ppresvar_bn_act");
  const int64_t c = channels(x, nhwc);
  PD_CHECK(scale.numel() == c && bias.numel() == c, "ppresvar_bn_act: scale and bias need C values");
  auto y = like(x);
  auto mean = paddle::empty({c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto var = paddle::empty({c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* r = res ? res->data<float>() : nullptr;
  if (nhwc) {
    bn_forward_nhwc(x.data<float>(), scale.data<float>(), bias.data<float>(), r, relu, eps, row_dims(x),
                    y.data<float>(), mean.data<float>(), var.data<float>());
  } else {
    bn_forward(x.data<float>(), scale.data<float>(), bias.data<float>(), r, relu, eps, dims_of(x), y.data<float>(),
               mean.data<float>(), var.data<float>());
  }
  return {y, mean, var};
}

std::vector<paddle::Tensor> bn_backward_op(const paddle::Tensor& x, const paddle::Tensor& scale,
                                           const paddle::Tensor& y, const paddle::Tensor& mean,
                                           const paddle::Tensor& var, const paddle::Tensor& dy, float eps, bool relu,
                                           bool nhwc, bool residual) {
  const int64_t c = channels(x, nhwc);
  auto dx = like(x);
  auto dscale = paddle::empty({c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dbias = paddle::empty({c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  paddle::Tensor dres;
  if (residual) dres = like(x);
  float* rp = residual ? dres.data<float>() : nullptr;
  if (nhwc) {
    bn_backward_nhwc(x.data<float>(), scale.data<float>(), y.data<float>(), mean.data<float>(), var.data<float>(),
                     dy.data<float>(), relu, eps, row_dims(x), dx.data<float>(), dscale.data<float>(),
                     dbias.data<float>(), rp);
  } else {
    bn_backward(x.data<float>(), scale.data<float>(), y.data<float>(), mean.data<float>(), var.data<float>(),
                dy.data<float>(), relu, eps, dims_of(x), dx.data<float>(), dscale.data<float>(), dbias.data<float>(),
                rp);
  }
  if (residual) return {dx, dscale, dbias, dres};
  return {dx, dscale, dbias};
}

}  // namespace

std::vector<paddle::Tensor> BnActForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                         const paddle::Tensor& bias, float eps, bool relu, bool nhwc) {
  return bn_forward_op(x, scale, bias, nullptr, eps, relu, nhwc);
}

std::vector<paddle::Tensor> BnAddActForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                            const paddle::Tensor& bias, const paddle::Tensor& res, float eps,
                                            bool relu, bool nhwc) {
  PD_CHECK(res.shape() == x.shape(), "ppresvar_bn_add_act: the residual must have the input's shape");
  return bn_forward_op(x, scale, bias, &res, eps, relu, nhwc);
}

std::vector<paddle::Tensor> BnActBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                          const paddle::Tensor& y, const paddle::Tensor& mean,
                                          const paddle::Tensor& var, const paddle::Tensor& dy, float eps, bool relu,
                                          bool nhwc) {
  return bn_backward_op(x, scale, y, mean, var, dy, eps, relu, nhwc, false);
}

std::vector<paddle::Tensor> BnAddActBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                             const paddle::Tensor& y, const paddle::Tensor& mean,
                                             const paddle::Tensor& var, const paddle::Tensor& dy, float eps,
                                             bool relu, bool nhwc) {
  return bn_backward_op(x, scale, y, mean, var, dy, eps, relu, nhwc, true);
}

std::vector<std::vector<int64_t>> BnShape(const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                          const std::vector<int64_t>& bias) {
  return {x, scale, scale};
}

std::vector<std::vector<int64_t>> BnAddShape(const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                             const std::vector<int64_t>& bias, const std::vector<int64_t>& res) {
  return {x, scale, scale};
}

std::vector<paddle::DataType> BnDtype(const paddle::DataType& x, const paddle::DataType& s,
                                      const paddle::DataType& b) {
  return {x, x, x};
}

std::vector<paddle::DataType> BnAddDtype(const paddle::DataType& x, const paddle::DataType& s,
                                         const paddle::DataType& b, const paddle::DataType& r) {
  return {x, x, x};
}

PD_BUILD_OP(ppresvar_bn_act)
    .Inputs({"X", "Scale", "Bias"})
    .Outputs({"Out", "Mean", "Var"})
    .Attrs({"epsilon: float", "relu: bool", "nhwc: bool"})
    .SetKernelFn(PD_KERNEL(BnActForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BnShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BnDtype));

PD_BUILD_GRAD_OP(ppresvar_bn_act)
    .Inputs({"X", "Scale", "Out", "Mean", "Var", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias")})
    .Attrs({"epsilon: float", "relu: bool", "nhwc: bool"})
    .SetKernelFn(PD_KERNEL(BnActBackward));

PD_BUILD_OP(ppresvar_bn_add_act)
    .Inputs({"X", "Scale", "Bias", "Residual"})
    .Outputs({"Out", "Mean", "Var"})
    .Attrs({"epsilon: float", "relu: bool", "nhwc: bool"})
    .SetKernelFn(PD_KERNEL(BnAddActForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BnAddShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BnAddDtype));

PD_BUILD_GRAD_OP(ppresvar_bn_add_act)
    .Inputs({"X", "Scale", "Out", "Mean", "Var", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias"), paddle::Grad("Residual")})
    .Attrs({"epsilon: float", "relu: bool", "nhwc: bool"})
    .SetKernelFn(PD_KERNEL(BnAddActBackward));

// ---------------------------------------------------------------------------
// ppresvar_dyrelu: y = max_k (a_k x + b_k) with, per image n, channel c and
// position p, a_k = init_k + pi r_k and b_k = init_{K+k} + pi r_{K+k}:
// R (N, C or 1, 2K) the residual coefficients already scaled by lambda,
// Init (2K) alpha_1..K, beta_1..K, Pi (N, 1, H, W) the spatial attention of
// DyReLU-C, or (N, 1, 1, 1) of ones for A and B. The line that attains the
// maximum (the first, on a tie) takes the gradient.

namespace {

struct DyDims {
  int64_t n, c, hw, rc, k, phw;
};

// x NCHW, or NHWC with `nhwc` (Pi is (N, H, W, 1) then: the same memory).
DyDims dy_dims(const paddle::Tensor& x, const paddle::Tensor& r, const paddle::Tensor& pi, bool nhwc) {
  auto s = x.shape();
  const int64_t c = nhwc ? s.back() : s[1];
  const int64_t hw = x.numel() / (s[0] * c);
  auto rs = r.shape();
  return {s[0], c, hw, rs[1], rs[2] / 2, pi.numel() / s[0]};
}

void dyrelu_forward_nchw(const DyDims& d, const float* px, const float* pr, const float* pinit, const float* ppi,
                         float* py) {
  const int64_t k = d.k;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < d.n; ++b) {
    for (int64_t c = 0; c < d.c; ++c) {
      const float* rk = pr + (b * d.rc + (d.rc == 1 ? 0 : c)) * 2 * k;
      const float* pp = ppi + b * d.phw;
      const float* xi = px + (b * d.c + c) * d.hw;
      float* yi = py + (b * d.c + c) * d.hw;
      for (int64_t i = 0; i < d.hw; ++i) {
        const float p = pp[d.phw == 1 ? 0 : i];
        float best = (pinit[0] + p * rk[0]) * xi[i] + (pinit[k] + p * rk[k]);
        for (int64_t j = 1; j < k; ++j) {
          const float z = (pinit[j] + p * rk[j]) * xi[i] + (pinit[k + j] + p * rk[k + j]);
          best = z > best ? z : best;
        }
        yi[i] = best;
      }
    }
  }
}

void dyrelu_backward_nchw(const DyDims& d, const float* px, const float* pr, const float* pinit, const float* ppi,
                          const float* pg, float* pdx, float* pdr, float* pdpi) {
  const int64_t k = d.k;
  // one image per thread at a time: its sums over C and H*W in a fixed order
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < d.n; ++b) {
    std::vector<double> acc(d.rc * 2 * k, 0.0), accpi(d.phw, 0.0);
    const float* pp = ppi + b * d.phw;
    for (int64_t c = 0; c < d.c; ++c) {
      const int64_t rc = d.rc == 1 ? 0 : c;
      const float* rk = pr + (b * d.rc + rc) * 2 * k;
      const float* xi = px + (b * d.c + c) * d.hw;
      const float* gi = pg + (b * d.c + c) * d.hw;
      float* di = pdx + (b * d.c + c) * d.hw;
      double* a = acc.data() + rc * 2 * k;
      for (int64_t i = 0; i < d.hw; ++i) {
        const float p = pp[d.phw == 1 ? 0 : i];
        int64_t arg = 0;
        float best = (pinit[0] + p * rk[0]) * xi[i] + (pinit[k] + p * rk[k]);
        for (int64_t j = 1; j < k; ++j) {
          const float z = (pinit[j] + p * rk[j]) * xi[i] + (pinit[k + j] + p * rk[k + j]);
          if (z > best) {
            best = z;
            arg = j;
          }
        }
        const float g = gi[i];
        di[i] = g * (pinit[arg] + p * rk[arg]);
        a[arg] += static_cast<double>(g) * p * xi[i];
        a[k + arg] += static_cast<double>(g) * p;
        accpi[d.phw == 1 ? 0 : i] += static_cast<double>(g) * (rk[arg] * xi[i] + rk[k + arg]);
      }
    }
    for (int64_t j = 0; j < d.rc * 2 * k; ++j) pdr[b * d.rc * 2 * k + j] = static_cast<float>(acc[j]);
    for (int64_t j = 0; j < d.phw; ++j) pdpi[b * d.phw + j] = static_cast<float>(accpi[j]);
  }
}

// NHWC: an image's coefficients laid out per line, rt[j * C + c] = R[b, c or
// 0, j], so that each position's row of C channels is one vectorised loop
// per line j.
std::vector<float> lines_of(const DyDims& d, const float* pr, int64_t b) {
  std::vector<float> rt(static_cast<size_t>(2 * d.k * d.c));
  for (int64_t j = 0; j < 2 * d.k; ++j)
    for (int64_t c = 0; c < d.c; ++c) rt[j * d.c + c] = pr[(b * d.rc + (d.rc == 1 ? 0 : c)) * 2 * d.k + j];
  return rt;
}

void dyrelu_forward_nhwc(const DyDims& d, const float* px, const float* pr, const float* pinit, const float* ppi,
                         float* py) {
  const int64_t k = d.k, C = d.c;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < d.n; ++b) {
    const std::vector<float> rt = lines_of(d, pr, b);
    const float* R = rt.data();
    for (int64_t i = 0; i < d.hw; ++i) {
      const float p = ppi[b * d.phw + (d.phw == 1 ? 0 : i)];
      const float* x = px + (b * d.hw + i) * C;
      float* y = py + (b * d.hw + i) * C;
      const float a0 = pinit[0], b0 = pinit[k];
      const float *ra = R, *rb = R + k * C;
      if (k == 2) {  // the paper's K: both lines in one vectorised pass
        const float a1 = pinit[1], b1 = pinit[3];
        const float *sa = R + C, *sb = R + 3 * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float z0 = (a0 + p * ra[c]) * x[c] + (b0 + p * rb[c]);
          const float z1 = (a1 + p * sa[c]) * x[c] + (b1 + p * sb[c]);
          y[c] = z1 > z0 ? z1 : z0;
        }
        continue;
      }
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) y[c] = (a0 + p * ra[c]) * x[c] + (b0 + p * rb[c]);
      for (int64_t j = 1; j < k; ++j) {
        const float aj = pinit[j], bj = pinit[k + j];
        const float *sa = R + j * C, *sb = R + (k + j) * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) y[c] = std::max(y[c], (aj + p * sa[c]) * x[c] + (bj + p * sb[c]));
      }
    }
  }
}

void dyrelu_backward_nhwc(const DyDims& d, const float* px, const float* pr, const float* pinit, const float* ppi,
                          const float* pg, float* pdx, float* pdr, float* pdpi) {
  const int64_t k = d.k, C = d.c;
  // one image per thread at a time: its sums per channel and line over each run
  // of kRows positions in float, the runs added in double, in their order
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < d.n; ++b) {
    const std::vector<float> rt = lines_of(d, pr, b);
    const float* R = rt.data();
    std::vector<double> acc(static_cast<size_t>(2 * k * C), 0.0), accpi(d.phw, 0.0);
    std::vector<float> run(static_cast<size_t>(2 * k * C)), best(C);
    std::vector<int32_t> arg(C);
    float *bp = best.data(), *rp = run.data();
    int32_t* ap = arg.data();
    for (int64_t i0 = 0; i0 < d.hw; i0 += kRows) {
      std::fill(run.begin(), run.end(), 0.0f);
      float pirun = 0.0f;
      for (int64_t i = i0; i < std::min(d.hw, i0 + kRows); ++i) {
        const float p = ppi[b * d.phw + (d.phw == 1 ? 0 : i)];
        const float* x = px + (b * d.hw + i) * C;
        const float* g = pg + (b * d.hw + i) * C;
        float* dx = pdx + (b * d.hw + i) * C;
        if (k == 2) {  // the paper's K: one vectorised pass, line 1 taking the gradient where z1 > z0
          const float a0 = pinit[0], b0 = pinit[2], a1 = pinit[1], b1 = pinit[3];
          const float *s0 = R, *s1 = R + C, *t0 = R + 2 * C, *t1 = R + 3 * C;
          float *ra0 = rp, *ra1 = rp + C, *rb0 = rp + 2 * C, *rb1 = rp + 3 * C;
          float pisum = 0.0f;
#pragma omp simd reduction(+ : pisum)
          for (int64_t c = 0; c < C; ++c) {
            const float u0 = a0 + p * s0[c], u1 = a1 + p * s1[c];
            const float z0 = u0 * x[c] + (b0 + p * t0[c]), z1 = u1 * x[c] + (b1 + p * t1[c]);
            const float gv = g[c];
            const float g1 = z1 > z0 ? gv : 0.0f, g0 = gv - g1;
            dx[c] = g0 * u0 + g1 * u1;
            ra0[c] += g0 * p * x[c];
            ra1[c] += g1 * p * x[c];
            rb0[c] += g0 * p;
            rb1[c] += g1 * p;
            pisum += g0 * (s0[c] * x[c] + t0[c]) + g1 * (s1[c] * x[c] + t1[c]);
          }
          if (d.phw == 1) {
            pirun += pisum;
          } else {
            accpi[i] += static_cast<double>(pisum);
          }
          continue;
        }
        for (int64_t j = 0; j < k; ++j) {  // the line that attains the maximum (the first, on a tie)
          const float aj = pinit[j], bj = pinit[k + j];
          const float *sa = R + j * C, *sb = R + (k + j) * C;
          const int32_t jj = static_cast<int32_t>(j);
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const float z = (aj + p * sa[c]) * x[c] + (bj + p * sb[c]);
            const bool take = jj == 0 || z > bp[c];
            bp[c] = take ? z : bp[c];
            ap[c] = take ? jj : ap[c];
          }
        }
        float pisum = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
          const float aj = pinit[j];
          const float *sa = R + j * C, *sb = R + (k + j) * C;
          float *ra = rp + j * C, *rb = rp + (k + j) * C;
          const int32_t jj = static_cast<int32_t>(j);
#pragma omp simd reduction(+ : pisum)
          for (int64_t c = 0; c < C; ++c) {
            const float gv = g[c];
            const float gj = ap[c] == jj ? gv : 0.0f;
            const float prev = jj == 0 ? 0.0f : dx[c];
            dx[c] = prev + gj * (aj + p * sa[c]);
            ra[c] += gj * p * x[c];
            rb[c] += gj * p;
            pisum += gj * (sa[c] * x[c] + sb[c]);
          }
        }
        if (d.phw == 1) {
          pirun += pisum;
        } else {
          accpi[i] += static_cast<double>(pisum);
        }
      }
      for (int64_t j = 0; j < 2 * k * C; ++j) acc[j] += static_cast<double>(rp[j]);
      if (d.phw == 1) accpi[0] += static_cast<double>(pirun);
    }
    for (int64_t j = 0; j < 2 * k; ++j) {
      if (d.rc == 1) {
        double s = 0.0;
        for (int64_t c = 0; c < C; ++c) s += acc[j * C + c];
        pdr[b * 2 * k + j] = static_cast<float>(s);
      } else {
        for (int64_t c = 0; c < C; ++c) pdr[(b * C + c) * 2 * k + j] = static_cast<float>(acc[j * C + c]);
      }
    }
    for (int64_t j = 0; j < d.phw; ++j) pdpi[b * d.phw + j] = static_cast<float>(accpi[j]);
  }
}

}  // namespace

std::vector<paddle::Tensor> DyReLUForward(const paddle::Tensor& x, const paddle::Tensor& r,
                                          const paddle::Tensor& init, const paddle::Tensor& pi, bool nhwc) {
  check(x, "ppresvar_dyrelu");
  DyDims d = dy_dims(x, r, pi, nhwc);
  PD_CHECK(d.rc == 1 || d.rc == d.c, "ppresvar_dyrelu: R must be (N, 1 or C, 2K)");
  PD_CHECK(d.phw == 1 || d.phw == d.hw, "ppresvar_dyrelu: Pi must be (N, 1, H, W) or (N, 1, 1, 1)");
  auto y = like(x);
  const float *px = x.data<float>(), *pr = r.data<float>(), *pinit = init.data<float>(), *ppi = pi.data<float>();
  if (nhwc) {
    dyrelu_forward_nhwc(d, px, pr, pinit, ppi, y.data<float>());
  } else {
    dyrelu_forward_nchw(d, px, pr, pinit, ppi, y.data<float>());
  }
  return {y};
}

std::vector<paddle::Tensor> DyReLUBackward(const paddle::Tensor& x, const paddle::Tensor& r,
                                           const paddle::Tensor& init, const paddle::Tensor& pi,
                                           const paddle::Tensor& dy, bool nhwc) {
  DyDims d = dy_dims(x, r, pi, nhwc);
  auto dx = like(x);
  auto dr = paddle::empty(r.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dpi = paddle::empty(pi.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float *px = x.data<float>(), *pr = r.data<float>(), *pinit = init.data<float>(), *ppi = pi.data<float>();
  if (nhwc) {
    dyrelu_backward_nhwc(d, px, pr, pinit, ppi, dy.data<float>(), dx.data<float>(), dr.data<float>(),
                         dpi.data<float>());
  } else {
    dyrelu_backward_nchw(d, px, pr, pinit, ppi, dy.data<float>(), dx.data<float>(), dr.data<float>(),
                         dpi.data<float>());
  }
  return {dx, dr, dpi};
}

std::vector<std::vector<int64_t>> DyReLUShape(const std::vector<int64_t>& x, const std::vector<int64_t>& r,
                                              const std::vector<int64_t>& init, const std::vector<int64_t>& pi) {
  return {x};
}

std::vector<paddle::DataType> DyReLUDtype(const paddle::DataType& x, const paddle::DataType& r,
                                          const paddle::DataType& i, const paddle::DataType& p) {
  return {x};
}

PD_BUILD_OP(ppresvar_dyrelu)
    .Inputs({"X", "R", "Init", "Pi"})
    .Outputs({"Out"})
    .Attrs({"nhwc: bool"})
    .SetKernelFn(PD_KERNEL(DyReLUForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DyReLUShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DyReLUDtype));

PD_BUILD_GRAD_OP(ppresvar_dyrelu)
    .Inputs({"X", "R", "Init", "Pi", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("R"), paddle::Grad("Pi")})
    .Attrs({"nhwc: bool"})
    .SetKernelFn(PD_KERNEL(DyReLUBackward));

// ---------------------------------------------------------------------------
// ppresvar_nam_gate: NAM's channel attention after its batch norm,
// y = sigmoid(z * w_c) * x, Z = bn(X) (N, C, H, W, or N, H, W, C with
// `nhwc`), W (C) the normalised scale weights |gamma_c| / sum |gamma|. dW_c
// sums over (N, H, W) per channel in the batch norm's fixed order.

namespace {

inline float sigmoidf(float t) { return 1.0f / (1.0f + std::exp(-t)); }

}  // namespace

std::vector<paddle::Tensor> NamGateForward(const paddle::Tensor& z, const paddle::Tensor& w,
                                           const paddle::Tensor& x, bool nhwc) {
  check(x, "ppresvar_nam_gate");
  PD_CHECK(z.shape() == x.shape(), "ppresvar_nam_gate: Z and X must have one shape");
  PD_CHECK(w.numel() == channels(x, nhwc), "ppresvar_nam_gate: W must have one value per channel");
  auto y = like(x);
  const float *pz = z.data<float>(), *pw = w.data<float>(), *px = x.data<float>();
  float* py = y.data<float>();
  if (nhwc) {
    const RowDims d = row_dims(x);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < d.m; ++r) {
      const int64_t o = r * d.c;
      for (int64_t c = 0; c < d.c; ++c) py[o + c] = sigmoidf(pz[o + c] * pw[c]) * px[o + c];
    }
    return {y};
  }
  Dims d = dims_of(x);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < d.n; ++b) {
    for (int64_t c = 0; c < d.c; ++c) {
      const int64_t o = (b * d.c + c) * d.hw;
      const float wc = pw[c];
      for (int64_t i = 0; i < d.hw; ++i) py[o + i] = sigmoidf(pz[o + i] * wc) * px[o + i];
    }
  }
  return {y};
}

std::vector<paddle::Tensor> NamGateBackward(const paddle::Tensor& z, const paddle::Tensor& w,
                                            const paddle::Tensor& x, const paddle::Tensor& dy, bool nhwc) {
  auto dz = like(x);
  auto dx = like(x);
  auto dw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float *pz = z.data<float>(), *pw = w.data<float>(), *px = x.data<float>(), *pg = dy.data<float>();
  float *pdz = dz.data<float>(), *pdx = dx.data<float>(), *pdw = dw.data<float>();
  if (nhwc) {  // dW in the batch norm's NHWC order (runs of kRows rows in float, added in double)
    const RowDims d = row_dims(x);
    std::vector<double> sums[1];
    chunked_sums(d, 1, [&](int64_t r0, int64_t r1, float* acc) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t o = r * d.c;
        for (int64_t c = 0; c < d.c; ++c) {
          const float s = sigmoidf(pz[o + c] * pw[c]);
          const float g = pg[o + c];
          const float t = g * px[o + c] * s * (1.0f - s);
          pdx[o + c] = g * s;
          pdz[o + c] = t * pw[c];
          acc[c] += t * pz[o + c];
        }
      }
    }, sums);
    for (int64_t c = 0; c < d.c; ++c) pdw[c] = static_cast<float>(sums[0][c]);
    return {dz, dw, dx};
  }
  Dims d = dims_of(x);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.c; ++c) {
    const float wc = pw[c];
    double acc = 0.0;
    for (int64_t b = 0; b < d.n; ++b) {
      const int64_t o = (b * d.c + c) * d.hw;
      float row = 0.0f;
      for (int64_t i = 0; i < d.hw; ++i) {
        const float s = sigmoidf(pz[o + i] * wc);
        const float g = pg[o + i];
        const float t = g * px[o + i] * s * (1.0f - s);  // d y / d (z w)
        pdx[o + i] = g * s;
        pdz[o + i] = t * wc;
        row += t * pz[o + i];
      }
      acc += row;
    }
    pdw[c] = static_cast<float>(acc);
  }
  return {dz, dw, dx};
}

std::vector<std::vector<int64_t>> NamGateShape(const std::vector<int64_t>& z, const std::vector<int64_t>& w,
                                               const std::vector<int64_t>& x) {
  return {x};
}

std::vector<paddle::DataType> NamGateDtype(const paddle::DataType& z, const paddle::DataType& w,
                                           const paddle::DataType& x) {
  return {x};
}

PD_BUILD_OP(ppresvar_nam_gate)
    .Inputs({"Z", "W", "X"})
    .Outputs({"Out"})
    .Attrs({"nhwc: bool"})
    .SetKernelFn(PD_KERNEL(NamGateForward))
    .SetInferShapeFn(PD_INFER_SHAPE(NamGateShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(NamGateDtype));

PD_BUILD_GRAD_OP(ppresvar_nam_gate)
    .Inputs({"Z", "W", "X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Z"), paddle::Grad("W"), paddle::Grad("X")})
    .Attrs({"nhwc: bool"})
    .SetKernelFn(PD_KERNEL(NamGateBackward));

// ---------------------------------------------------------------------------
// ppresvar_add_relu: y = max(a + b, 0), any shape (a and b alike);
// dA = dB = dy where y > 0, else 0 (paddle's ReLU gradient at 0 is 0 too).

std::vector<paddle::Tensor> AddReluForward(const paddle::Tensor& a, const paddle::Tensor& b) {
  check(a, "ppresvar_add_relu");
  check(b, "ppresvar_add_relu");
  PD_CHECK(a.shape() == b.shape(), "ppresvar_add_relu: A and B must have one shape");
  auto y = like(a);
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float* py = y.data<float>();
  const int64_t n = a.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = std::max(pa[i] + pb[i], 0.0f);
  return {y};
}

std::vector<paddle::Tensor> AddReluBackward(const paddle::Tensor& y, const paddle::Tensor& dy) {
  auto da = like(y);
  auto db = like(y);
  const float *py = y.data<float>(), *pg = dy.data<float>();
  float *pda = da.data<float>(), *pdb = db.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = py[i] > 0.0f ? pg[i] : 0.0f;
    pda[i] = g;
    pdb[i] = g;
  }
  return {da, db};
}

std::vector<std::vector<int64_t>> AddReluShape(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return {a};
}

std::vector<paddle::DataType> AddReluDtype(const paddle::DataType& a, const paddle::DataType& b) { return {a}; }

PD_BUILD_OP(ppresvar_add_relu)
    .Inputs({"A", "B"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(AddReluForward))
    .SetInferShapeFn(PD_INFER_SHAPE(AddReluShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AddReluDtype));

PD_BUILD_GRAD_OP(ppresvar_add_relu)
    .Inputs({"Out", paddle::Grad("Out")})
    .Outputs({paddle::Grad("A"), paddle::Grad("B")})
    .SetKernelFn(PD_KERNEL(AddReluBackward));

// ---------------------------------------------------------------------------
// ppresvar_channel_mean: the global average pool, y[n, c] = mean over H*W of
// x (NCHW, or NHWC with `nhwc`), e.g. DyReLU's coefficient input. Each
// image's sums in a fixed order (NCHW: a channel's row in float; NHWC: runs
// of kRows positions in float, added in double); dx = dy / (H*W) everywhere.

std::vector<paddle::Tensor> ChannelMeanForward(const paddle::Tensor& x, bool nhwc) {
  check(x, "ppresvar_channel_mean");
  const int64_t n = x.shape()[0], c = channels(x, nhwc), hw = x.numel() / (n * c);
  auto y = paddle::empty({n, c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  if (nhwc) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n; ++b) {
      std::vector<double> acc(c, 0.0);
      std::vector<float> run(c);
      for (int64_t i0 = 0; i0 < hw; i0 += kRows) {
        std::fill(run.begin(), run.end(), 0.0f);
        float* r = run.data();
        for (int64_t i = i0; i < std::min(hw, i0 + kRows); ++i) {
          const float* p = px + (b * hw + i) * c;
#pragma omp simd
          for (int64_t k = 0; k < c; ++k) r[k] += p[k];
        }
        for (int64_t k = 0; k < c; ++k) acc[k] += r[k];
      }
      for (int64_t k = 0; k < c; ++k) py[b * c + k] = static_cast<float>(acc[k] / hw);
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < n * c; ++o) {
      const float* p = px + o * hw;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < hw; ++i) s += p[i];
      py[o] = static_cast<float>(static_cast<double>(s) / hw);
    }
  }
  return {y};
}

std::vector<paddle::Tensor> ChannelMeanBackward(const paddle::Tensor& x, const paddle::Tensor& dy, bool nhwc) {
  const int64_t n = x.shape()[0], c = channels(x, nhwc), hw = x.numel() / (n * c);
  auto dx = like(x);
  const float* g = dy.data<float>();
  float* d = dx.data<float>();
  const float inv = 1.0f / static_cast<float>(hw);
  if (nhwc) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n * hw; ++r) {
      const float* gb = g + (r / hw) * c;
      float* q = d + r * c;
#pragma omp simd
      for (int64_t k = 0; k < c; ++k) q[k] = gb[k] * inv;
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < n * c; ++o) std::fill(d + o * hw, d + (o + 1) * hw, g[o] * inv);
  }
  return {dx};
}

std::vector<std::vector<int64_t>> ChannelMeanShape(const std::vector<int64_t>& x, bool nhwc) {
  return {{x[0], nhwc ? x.back() : x[1]}};
}

std::vector<paddle::DataType> ChannelMeanDtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(ppresvar_channel_mean)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"nhwc: bool"})
    .SetKernelFn(PD_KERNEL(ChannelMeanForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ChannelMeanShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ChannelMeanDtype));

PD_BUILD_GRAD_OP(ppresvar_channel_mean)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"nhwc: bool"})
    .SetKernelFn(PD_KERNEL(ChannelMeanBackward));
