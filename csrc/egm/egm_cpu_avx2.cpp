// The AVX2+FMA copy of the EGM E-step (this file alone is compiled with
// -mavx2 -mfma; egm_cpu.cpp calls it only on CPUs that have both).
#if defined(__AVX2__) && defined(__FMA__)

#define DEEPRET_SIMD_NS avx2
#include "egm/egm_estep.h"

namespace deepret::egm::avx2 {

void estep_avx2(const double* py, const double* px, const double* ps, index_t n,  // samples [n]
                const double* my, const double* mx, const double* ivy, const double* ivx,
                const double* logc, index_t k,  // components [k]
                double* acc,                    // [kAccFields, k]
                double* e) {                    // scratch [k]
  estep(py, px, ps, n, my, mx, ivy, ivx, logc, k, acc, e);
}

void estep_few_avx2(const double* py, const double* px, const double* ps, index_t n,  // samples [n]
                    const double* my, const double* mx, const double* ivy, const double* ivx,
                    const double* logc, index_t k,  // components [k]
                    double* acc,                    // [kAccFields, k]
                    double* scratch) {              // [(k + 3) * n]
  estep_few(py, px, ps, n, my, mx, ivy, ivx, logc, k, acc, scratch);
}

void smooth_avx2(const double* a, index_t nc, index_t h, index_t w, const double* gh, const double* gw,
                 index_t wp, double* t, double* out) {  // a, out [nc, h, w]; gh [h, h]; gw [w, wp]; t [h, wp]
  smooth<2>(a, nc, h, w, gh, gw, wp, t, out);
}

index_t purge_pass_avx2(const double* y, const double* x, const double* vy, const double* vx, const double* p,
                    const double* self,  // candidates [count]
                    index_t count, double cy, double cx, double cvy, double cvx, double cp, double tau,
                    double* cross, double* alive) {  // [count]
  return purge_pass(y, x, vy, vx, p, self, count, cy, cx, cvy, cvx, cp, tau, cross, alive);
}

}  // namespace deepret::egm::avx2

#endif
