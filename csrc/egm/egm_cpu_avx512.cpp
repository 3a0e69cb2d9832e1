// The AVX-512F copy of the EGM E-step and grid smoothing (this file alone is
// compiled with -mavx512f; egm_cpu.cpp calls it only where use_avx512f()).
// Same source as the other copies (egm_estep.h); the 32 vector registers
// hold the few-component E-step's ten running sums without spilling.
#if defined(__AVX512F__)

#define DEEPRET_SIMD_NS avx512
#include "egm/egm_estep.h"

namespace deepret::egm::avx512 {

void estep_avx512(const double* py, const double* px, const double* ps, index_t n,  // samples [n]
                  const double* my, const double* mx, const double* ivy, const double* ivx,
                  const double* logc, index_t k,  // components [k]
                  double* acc,                    // [kAccFields, k]
                  double* e) {                    // scratch [k]
  estep(py, px, ps, n, my, mx, ivy, ivx, logc, k, acc, e);
}

void estep_few_avx512(const double* py, const double* px, const double* ps, index_t n,  // samples [n]
                      const double* my, const double* mx, const double* ivy, const double* ivx,
                      const double* logc, index_t k,  // components [k]
                      double* acc,                    // [kAccFields, k]
                      double* scratch) {              // [(k + 3) * n]
  estep_few(py, px, ps, n, my, mx, ivy, ivx, logc, k, acc, scratch);
}

void smooth_avx512(const double* a, index_t nc, index_t h, index_t w, const double* gh, const double* gw,
                   index_t wp, double* t, double* out) {  // a, out [nc, h, w]; gh [h, h]; gw [w, wp]; t [h, wp]
  smooth<4>(a, nc, h, w, gh, gw, wp, t, out);
}

index_t purge_pass_avx512(const double* y, const double* x, const double* vy, const double* vx, const double* p,
                      const double* self,  // candidates [count]
                      index_t count, double cy, double cx, double cvy, double cvx, double cp, double tau,
                      double* cross, double* alive) {  // [count]
  return purge_pass(y, x, vy, vx, p, self, count, cy, cx, cvy, cvx, cp, tau, cross, alive);
}

}  // namespace deepret::egm::avx512

#endif
