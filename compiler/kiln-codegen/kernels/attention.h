/*
 * attention.h - fused attention with an online softmax (template, per
 * variant; flash-attention's structure on a CPU).
 *
 * Per (batch, query head, block of AT_BQ queries): for each block of AT_BK
 * keys, K^T and V blocks are packed (gemm_b layout) into the slot's scratch,
 * S = Q K^T comes from the GEMM micro-kernel, the row pass applies scale,
 * mask and causality and updates the running max m and sum l, rescaling the
 * output accumulator by exp(m_old - m_new), and O += P V is another
 * micro-kernel pass. At the end O / l is written with O's strides. Causal
 * blocks past the diagonal are skipped. Rows whose keys are all masked give
 * NaN, as softmax over -inf does. Work items (batch, head, query block) are
 * split into at most KILN_MAX_SLOTS contiguous ranges, one scratch slot each.
 */

#define AT_BQ 32
#define AT_BK 64

typedef struct FN(attn_job) {
  const float *q, *k, *v, *mask;
  int64_t qs[4], ks[4], vs[4], os[4], ms[4];
  float* o;
  int64_t b, hq, hkv, sq, sk, d, dv, causal;
  float scale;
  char* scratch;
  int64_t slot_bytes, items, tasks, nqb;
} FN(attn_job);

KF int64_t FN(attn_round)(int64_t floats) { return cdiv(floats * 4, 64) * 64; }

/* Scratch layout of one slot (the Rust side computes the same sizes). */
KF int64_t FN(attn_kt_floats)(int64_t d) { return cdiv(AT_BK, NR) * NR * d; }
KF int64_t FN(attn_vb_floats)(int64_t dv) { return cdiv(dv, NR) * NR * AT_BK; }
KF int64_t FN(attn_lds)(void) { return cdiv(AT_BK, NR) * NR; }
KF int64_t FN(attn_ldo)(int64_t dv) { return cdiv(dv, NR) * NR; }
KF int64_t FN(attn_slot_bytes)(int64_t d, int64_t dv) {
  return FN(attn_round)(FN(attn_kt_floats)(d)) + FN(attn_round)(FN(attn_vb_floats)(dv)) +
         FN(attn_round)(AT_BQ * FN(attn_lds)()) + FN(attn_round)(AT_BQ * FN(attn_ldo)(dv)) +
         FN(attn_round)(2 * AT_BQ);
}

static KV_ATTR void FN(attn_item)(const FN(attn_job) * j, char* slot, int64_t item) {
  const int64_t d = j->d, dv = j->dv, lds = FN(attn_lds)(), ldo = FN(attn_ldo)(dv);
  float* kt = (float*)slot;
  float* vb = (float*)(slot + FN(attn_round)(FN(attn_kt_floats)(d)));
  float* s = (float*)((char*)vb + FN(attn_round)(FN(attn_vb_floats)(dv)));
  float* o = (float*)((char*)s + FN(attn_round)(AT_BQ * lds));
  float* ml = (float*)((char*)o + FN(attn_round)(AT_BQ * ldo));
  float *mrun = ml, *lrun = ml + AT_BQ;

  int64_t qb = item % j->nqb, bh = item / j->nqb;
  int64_t h = bh % j->hq, bi = bh / j->hq;
  int64_t hk = h / (j->hq / j->hkv);
  int64_t q0 = qb * AT_BQ, bq = KMIN(AT_BQ, j->sq - q0);
  const float* qp = j->q + bi * j->qs[0] + h * j->qs[1] + q0 * j->qs[2];
  const float* kp = j->k + bi * j->ks[0] + hk * j->ks[1];
  const float* vp = j->v + bi * j->vs[0] + hk * j->vs[1];
  const float* mp = j->mask ? j->mask + bi * j->ms[0] + h * j->ms[1] + q0 * j->ms[2] : 0;
  const int64_t off = j->sk - j->sq; /* key j is visible to query i when j <= i + off */

  for (int64_t i = 0; i < bq; i++) {
    mrun[i] = -__builtin_inff();
    lrun[i] = 0.0f;
    for (int64_t c = 0; c < ldo; c += VW) FN(vst)(o + i * ldo + c, (V)0.0f);
  }
  int64_t kend = j->sk;
  if (j->causal) kend = KMIN(kend, q0 + bq - 1 + off + 1);
  VI lane;
  for (int l = 0; l < VW; l++) lane[l] = l;

  for (int64_t kb = 0; kb < kend; kb += AT_BK) {
    int64_t bk = KMIN(AT_BK, kend - kb);
    /* Pack K^T (D x bk) and V (bk x DV) as gemm_b. */
    for (int64_t p = 0; p < cdiv(bk, NR); p++)
      for (int64_t c = 0; c < NR; c++) {
        int64_t key = p * NR + c;
        float* dst = kt + p * d * NR + c;
        if (key < bk) {
          const float* src = kp + (kb + key) * j->ks[2];
          for (int64_t e = 0; e < d; e++) dst[e * NR] = src[e * j->ks[3]];
        } else {
          for (int64_t e = 0; e < d; e++) dst[e * NR] = 0.0f;
        }
      }
    for (int64_t key = 0; key < bk; key++) {
      const float* src = vp + (kb + key) * j->vs[2];
      for (int64_t p = 0; p < cdiv(dv, NR); p++) {
        float* dst = vb + (p * AT_BK + key) * NR;
        int64_t c0 = p * NR, nc = KMIN(NR, dv - c0);
        if (j->vs[3] == 1 && nc == NR) {
          for (int64_t c = 0; c < NR; c += VW) FN(vst)(dst + c, FN(vld)(src + c0 + c));
        } else {
          for (int64_t c = 0; c < NR; c++) dst[c] = c < nc ? src[(c0 + c) * j->vs[3]] : 0.0f;
        }
      }
    }
    /* S = Q K^T */
    FN(tile_args) x;
    x.conv = 0;
    x.pf = 0;
    x.pf_one = 0;
    x.kc = d;
    x.ldc = lds;
    x.accumulate = 0;
    x.epi = 0;
    x.es = 0;
    x.er = 0;
    x.r0 = x.c0 = 0;
    for (int64_t i = 0; i < bq; i += MR) {
      int64_t mr = KMIN(MR, bq - i);
      const float* rows[MR];
      for (int r = 0; r < MR; r++) rows[r] = qp + (i + (r < mr ? r : 0)) * j->qs[2];
      x.a = rows;
      x.acs = j->qs[3];
      for (int64_t p = 0; p < cdiv(bk, NR); p++) {
        x.b = kt + p * d * NR;
        x.c = s + i * lds + p * NR;
        FN(tile)(mr, KMIN(NR, bk - p * NR), &x);
      }
    }
    /* Scale, mask, causality; online softmax update. */
    for (int64_t i = 0; i < bq; i++) {
      float* sr = s + i * lds;
      int64_t qi = q0 + i;
      const float* mr_ = mp ? mp + i * j->ms[2] + kb * j->ms[3] : 0;
      V mx = (V)-__builtin_inff();
      for (int64_t c = 0; c < bk; c += VW) {
        V t = FN(vld)(sr + c) * j->scale;
        if (mr_) {
          V mv;
          if (j->ms[3] == 1)
            mv = c + VW <= bk ? FN(vld)(mr_ + c) : FN(vld_n)(mr_ + c, bk - c);
          else
            for (int l = 0; l < VW; l++) mv[l] = c + l < bk ? mr_[(c + l) * j->ms[3]] : 0.0f;
          t += mv;
        }
        VI keyi = lane + (int)(kb + c);
        VI dead = (lane + (int)c) >= (int)bk;
        if (j->causal) dead |= keyi > (int)(qi + off);
        t = dead ? (V)-__builtin_inff() : t;
        FN(vst)(sr + c, t);
        mx = FN(vmax)(mx, t);
      }
      float mold = mrun[i], mnew = FN(hmax)(FN(vmax)(mx, (V)mold));
      if (mnew == -__builtin_inff()) {
        /* Nothing visible yet: P = 0, the state stays empty. */
        for (int64_t c = 0; c < bk; c += VW) FN(vst)(sr + c, (V)0.0f);
        continue;
      }
      V sum = (V)0.0f;
      for (int64_t c = 0; c < bk; c += VW) {
        V pv = FN(vexp)(FN(vld)(sr + c) - mnew);
        FN(vst)(sr + c, pv);
        sum += pv;
      }
      float alpha = FN(vexp)((V)(mold - mnew))[0];
      lrun[i] = lrun[i] * alpha + FN(hsum)(sum);
      mrun[i] = mnew;
      if (alpha != 1.0f)
        for (int64_t c = 0; c < ldo; c += VW)
          FN(vst)(o + i * ldo + c, FN(vld)(o + i * ldo + c) * alpha);
    }
    /* O += P V */
    x.kc = bk;
    x.ldc = ldo;
    x.accumulate = 1;
    x.acs = 1;
    for (int64_t i = 0; i < bq; i += MR) {
      int64_t mr = KMIN(MR, bq - i);
      const float* rows[MR];
      for (int r = 0; r < MR; r++) rows[r] = s + (i + (r < mr ? r : 0)) * lds;
      x.a = rows;
      for (int64_t p = 0; p < cdiv(dv, NR); p++) {
        x.b = vb + p * AT_BK * NR;
        x.c = o + i * ldo + p * NR;
        FN(tile)(mr, KMIN(NR, dv - p * NR), &x);
      }
    }
  }
  /* O / l */
  float* op = j->o + bi * j->os[0] + h * j->os[1] + q0 * j->os[2];
  for (int64_t i = 0; i < bq; i++) {
    float inv = 1.0f / lrun[i];
    const float* orow = o + i * ldo;
    float* dst = op + i * j->os[2];
    if (j->os[3] == 1) {
      int64_t nf = dv / VW, rem = dv - nf * VW;
      for (int64_t c = 0; c < nf; c++) FN(vst)(dst + c * VW, FN(vld)(orow + c * VW) * inv);
      if (rem) FN(vst_n)(dst + nf * VW, FN(vld)(orow + nf * VW) * inv, rem);
    } else {
      for (int64_t c = 0; c < dv; c++) dst[c * j->os[3]] = orow[c] * inv;
    }
  }
}

static KV_ATTR void FN(attn_task)(void* data, int64_t begin, int64_t end) {
  const FN(attn_job)* j = (const FN(attn_job)*)data;
  for (int64_t t = begin; t < end; t++) {
    char* slot = j->scratch + t * j->slot_bytes;
    int64_t i0 = part_begin(j->items, j->tasks, t), i1 = part_begin(j->items, j->tasks, t + 1);
    for (int64_t it = i0; it < i1; it++) FN(attn_item)(j, slot, it);
  }
}

KHIDDEN KV_ATTR void FN(kiln_k_attention)(const int64_t* args) {
  FN(attn_job) j;
  j.q = (const float*)slot_p(args, KILN_ATTN_Q);
  j.k = (const float*)slot_p(args, KILN_ATTN_K);
  j.v = (const float*)slot_p(args, KILN_ATTN_V);
  j.o = (float*)slot_p(args, KILN_ATTN_O);
  j.mask = (const float*)slot_p(args, KILN_ATTN_MASK);
  for (int i = 0; i < 4; i++) {
    j.qs[i] = slot_i(args, KILN_ATTN_Q_SB + i);
    j.ks[i] = slot_i(args, KILN_ATTN_K_SB + i);
    j.vs[i] = slot_i(args, KILN_ATTN_V_SB + i);
    j.os[i] = slot_i(args, KILN_ATTN_O_SB + i);
    j.ms[i] = slot_i(args, KILN_ATTN_M_SB + i);
  }
  j.b = slot_i(args, KILN_ATTN_B);
  j.hq = slot_i(args, KILN_ATTN_HQ);
  j.hkv = slot_i(args, KILN_ATTN_HKV);
  j.sq = slot_i(args, KILN_ATTN_SQ);
  j.sk = slot_i(args, KILN_ATTN_SK);
  j.d = slot_i(args, KILN_ATTN_D);
  j.dv = slot_i(args, KILN_ATTN_DV);
  j.scale = slot_f(args, KILN_ATTN_SCALE);
  j.causal = slot_i(args, KILN_ATTN_CAUSAL);
  j.scratch = (char*)slot_p(args, KILN_ATTN_SCRATCH);
  if (j.b <= 0 || j.hq <= 0 || j.sq <= 0 || j.dv <= 0 || j.hkv <= 0 || j.hq % j.hkv) return;
  j.nqb = cdiv(j.sq, AT_BQ);
  j.items = j.b * j.hq * j.nqb;
  j.slot_bytes = FN(attn_slot_bytes)(j.d, j.dv);
  double work = 2.0 * (double)(j.b * j.hq) * (double)j.sq * (double)j.sk * (double)(j.d + j.dv);
  j.tasks = par_tasks(work, j.items);
  if (j.tasks <= 1)
    FN(attn_task)(&j, 0, 1);
  else
    kiln_par_for(j.tasks, FN(attn_task), &j);
}

#undef AT_BQ
#undef AT_BK
