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
//   ppresvar_add_relu:   y = max(a + b, 0)          (a block's last addition and
//                                                    ReLU where no BN precedes it:
//                                                    after NAM, SE or drop path)
//
// bn is training-mode batch norm over (N, H, W) per channel, NCHW:
// xhat = (x - mean) * invstd, invstd = 1 / sqrt(var + eps), var biased, and
// y = scale * xhat + bias. Every reduction runs in one fixed order per
// channel (per image for DyReLU) whatever the thread count (batch norm: each
// image's H*W row summed in float, vectorised, the rows added in double), so
// results do not depend on the number of threads.
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

paddle::Tensor like(const paddle::Tensor& x) {
  return paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
}

std::vector<paddle::Tensor> bn_forward_op(const paddle::Tensor& x, const paddle::Tensor& scale,
                                          const paddle::Tensor& bias, const paddle::Tensor* res, float eps,
                                          bool relu) {
  check(x, "ppresvar_bn_act");
  Dims d = dims_of(x);
  PD_CHECK(scale.numel() == d.c && bias.numel() == d.c, "ppresvar_bn_act: scale and bias need C values");
  auto y = like(x);
  auto mean = paddle::empty({d.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto var = paddle::empty({d.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  bn_forward(x.data<float>(), scale.data<float>(), bias.data<float>(), res ? res->data<float>() : nullptr, relu,
             eps, d, y.data<float>(), mean.data<float>(), var.data<float>());
  return {y, mean, var};
}

}  // namespace

std::vector<paddle::Tensor> BnActForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                         const paddle::Tensor& bias, float eps, bool relu) {
  return bn_forward_op(x, scale, bias, nullptr, eps, relu);
}

std::vector<paddle::Tensor> BnAddActForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                            const paddle::Tensor& bias, const paddle::Tensor& res, float eps,
                                            bool relu) {
  PD_CHECK(res.shape() == x.shape(), "ppresvar_bn_add_act: the residual must have the input's shape");
  return bn_forward_op(x, scale, bias, &res, eps, relu);
}

std::vector<paddle::Tensor> BnActBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                          const paddle::Tensor& y, const paddle::Tensor& mean,
                                          const paddle::Tensor& var, const paddle::Tensor& dy, float eps, bool relu) {
  Dims d = dims_of(x);
  auto dx = like(x);
  auto dscale = paddle::empty({d.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dbias = paddle::empty({d.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  bn_backward(x.data<float>(), scale.data<float>(), y.data<float>(), mean.data<float>(), var.data<float>(),
              dy.data<float>(), relu, eps, d, dx.data<float>(), dscale.data<float>(), dbias.data<float>(), nullptr);
  return {dx, dscale, dbias};
}

std::vector<paddle::Tensor> BnAddActBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                             const paddle::Tensor& y, const paddle::Tensor& mean,
                                             const paddle::Tensor& var, const paddle::Tensor& dy, float eps,
                                             bool relu) {
  Dims d = dims_of(x);
  auto dx = like(x);
  auto dres = like(x);
  auto dscale = paddle::empty({d.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dbias = paddle::empty({d.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  bn_backward(x.data<float>(), scale.data<float>(), y.data<float>(), mean.data<float>(), var.data<float>(),
              dy.data<float>(), relu, eps, d, dx.data<float>(), dscale.data<float>(), dbias.data<float>(),
              dres.data<float>());
  return {dx, dscale, dbias, dres};
}

std::vector<std::vector<int64_t>> BnShape(const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                          const std::vector<int64_t>& bias) {
  return {x, {x[1]}, {x[1]}};
}

std::vector<std::vector<int64_t>> BnAddShape(const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                             const std::vector<int64_t>& bias, const std::vector<int64_t>& res) {
  return {x, {x[1]}, {x[1]}};
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
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(BnActForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BnShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BnDtype));

PD_BUILD_GRAD_OP(ppresvar_bn_act)
    .Inputs({"X", "Scale", "Out", "Mean", "Var", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias")})
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(BnActBackward));

PD_BUILD_OP(ppresvar_bn_add_act)
    .Inputs({"X", "Scale", "Bias", "Residual"})
    .Outputs({"Out", "Mean", "Var"})
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(BnAddActForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BnAddShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BnAddDtype));

PD_BUILD_GRAD_OP(ppresvar_bn_add_act)
    .Inputs({"X", "Scale", "Out", "Mean", "Var", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias"), paddle::Grad("Residual")})
    .Attrs({"epsilon: float", "relu: bool"})
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

DyDims dy_dims(const paddle::Tensor& x, const paddle::Tensor& r, const paddle::Tensor& pi) {
  Dims d = dims_of(x);
  auto rs = r.shape();
  return {d.n, d.c, d.hw, rs[1], rs[2] / 2, pi.numel() / d.n};
}

}  // namespace

std::vector<paddle::Tensor> DyReLUForward(const paddle::Tensor& x, const paddle::Tensor& r,
                                          const paddle::Tensor& init, const paddle::Tensor& pi) {
  check(x, "ppresvar_dyrelu");
  DyDims d = dy_dims(x, r, pi);
  PD_CHECK(d.rc == 1 || d.rc == d.c, "ppresvar_dyrelu: R must be (N, 1 or C, 2K)");
  PD_CHECK(d.phw == 1 || d.phw == d.hw, "ppresvar_dyrelu: Pi must be (N, 1, H, W) or (N, 1, 1, 1)");
  auto y = like(x);
  const float *px = x.data<float>(), *pr = r.data<float>(), *pinit = init.data<float>(), *ppi = pi.data<float>();
  float* py = y.data<float>();
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
  return {y};
}

std::vector<paddle::Tensor> DyReLUBackward(const paddle::Tensor& x, const paddle::Tensor& r,
                                           const paddle::Tensor& init, const paddle::Tensor& pi,
                                           const paddle::Tensor& dy) {
  DyDims d = dy_dims(x, r, pi);
  auto dx = like(x);
  auto dr = paddle::empty(r.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dpi = paddle::empty(pi.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float *px = x.data<float>(), *pr = r.data<float>(), *pinit = init.data<float>(), *ppi = pi.data<float>();
  const float* pg = dy.data<float>();
  float *pdx = dx.data<float>(), *pdr = dr.data<float>(), *pdpi = dpi.data<float>();
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
    .SetKernelFn(PD_KERNEL(DyReLUForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DyReLUShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DyReLUDtype));

PD_BUILD_GRAD_OP(ppresvar_dyrelu)
    .Inputs({"X", "R", "Init", "Pi", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("R"), paddle::Grad("Pi")})
    .SetKernelFn(PD_KERNEL(DyReLUBackward));

// ---------------------------------------------------------------------------
// ppresvar_nam_gate: NAM's channel attention after its batch norm,
// y = sigmoid(z * w_c) * x, Z = bn(X) (N, C, H, W), W (C) the normalised
// scale weights |gamma_c| / sum |gamma|. dW_c sums over (N, H, W) per channel
// in the batch norm's fixed order (each image's row in float, rows in double).

namespace {

inline float sigmoidf(float t) { return 1.0f / (1.0f + std::exp(-t)); }

}  // namespace

std::vector<paddle::Tensor> NamGateForward(const paddle::Tensor& z, const paddle::Tensor& w,
                                           const paddle::Tensor& x) {
  check(x, "ppresvar_nam_gate");
  Dims d = dims_of(x);
  PD_CHECK(z.shape() == x.shape(), "ppresvar_nam_gate: Z and X must have one shape");
  PD_CHECK(w.numel() == d.c, "ppresvar_nam_gate: W must have one value per channel");
  auto y = like(x);
  const float *pz = z.data<float>(), *pw = w.data<float>(), *px = x.data<float>();
  float* py = y.data<float>();
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
                                            const paddle::Tensor& x, const paddle::Tensor& dy) {
  Dims d = dims_of(x);
  auto dz = like(x);
  auto dx = like(x);
  auto dw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float *pz = z.data<float>(), *pw = w.data<float>(), *px = x.data<float>(), *pg = dy.data<float>();
  float *pdz = dz.data<float>(), *pdx = dx.data<float>(), *pdw = dw.data<float>();
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
    .SetKernelFn(PD_KERNEL(NamGateForward))
    .SetInferShapeFn(PD_INFER_SHAPE(NamGateShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(NamGateDtype));

PD_BUILD_GRAD_OP(ppresvar_nam_gate)
    .Inputs({"Z", "W", "X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Z"), paddle::Grad("W"), paddle::Grad("X")})
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
