/*
 * igemm_dot.h - the dot-product micro-kernel of igemm.h and the column
 * sums of a B packed at compile time, for one instruction. Included by
 * igemm.h once per instruction with IGD_SFX (the name suffix), IGD_ATTR
 * (the functions' target attributes) and IGD_DOT(acc, a, b) (acc + the dot
 * products of groups of 4: u8 lanes of a by i8 lanes of b, into int32
 * lanes; vpdpbusd's semantics) defined; undefines them.
 */

/* Rows [i0, i0 + MR) x panel p. */
static IGD_ATTR void FN(KCAT(ig_tile_, IGD_SFX))(const FN(ig_job) * j, int64_t i0, int64_t p) {
  const uint8_t* a = j->pa + i0 * j->kp;
  const int32_t* b = (const int32_t*)(j->pb + p * NR * j->kp);
  VI acc[MR][NRV];
#pragma unroll
  for (int r = 0; r < MR; r++)
#pragma unroll
    for (int v = 0; v < NRV; v++) acc[r][v] = (VI)0;
  for (int64_t kq = 0; kq < j->kp / 4; kq++) {
    VI bv[NRV];
#pragma unroll
    for (int v = 0; v < NRV; v++) bv[v] = *(const IGVIU*)(b + kq * NR + v * VW);
#pragma unroll
    for (int r = 0; r < MR; r++) {
      int32_t q;
      __builtin_memcpy(&q, a + r * j->kp + kq * 4, 4);
      VI av = (VI)q;
#pragma unroll
      for (int v = 0; v < NRV; v++) acc[r][v] = IGD_DOT(acc[r][v], av, bv[v]);
    }
  }
  FN(ig_finish_v)(j, acc, i0, p);
}

/* Column sums and zero points of panels [p0, p1) of a B packed at compile
 * time (int8_gemm_b): the dot product of each panel with ones. */
static IGD_ATTR void FN(KCAT(ig_sums_, IGD_SFX))(void* data, int64_t p0, int64_t p1) {
  const FN(ig_job)* j = (const FN(ig_job)*)data;
  for (int64_t p = p0; p < p1; p++) {
    const int32_t* b = (const int32_t*)(j->pb + p * NR * j->kp);
    VI s[NRV];
#pragma unroll
    for (int v = 0; v < NRV; v++) s[v] = (VI)0;
    for (int64_t kq = 0; kq < j->kp / 4; kq++)
#pragma unroll
      for (int v = 0; v < NRV; v++)
        s[v] = IGD_DOT(s[v], (VI)0x01010101, *(const IGVIU*)(b + kq * NR + v * VW));
    for (int v = 0; v < NRV; v++)
      for (int l = 0; l < VW; l++) {
        int64_t c = p * NR + v * VW + l;
        j->colsum[c] = s[v][l];
        j->zbv[c] = c < j->n ? FN(ig_zb)(j, c) : 0;
      }
  }
}

#undef IGD_SFX
#undef IGD_ATTR
#undef IGD_DOT
