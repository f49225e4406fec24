/* SPDX-License-Identifier: MIT OR Apache-2.0
 * qemu-insn: a TCG plugin for qemu-user that counts the guest instructions (and classes of them)
 * a process runs on the emulated ARM1176. The project keeps its own copy so that a clone alone
 * builds the benchmark (README.md beside this file). */
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <inttypes.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr, uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
enum { TOTAL, LDST, MUL, VFP_SP, VFP_DP, VFP_DIVSQRT, THUMB, NCAT };
static const char *names[NCAT] = {"total","ldst","mul","vfp_sp","vfp_dp","vfp_divsqrt","thumb16"};
static uint64_t cnt[NCAT];
static int classify(uint32_t w, size_t sz) {
  if (sz == 2) return THUMB;
  uint32_t cond = w >> 28;
  if (cond == 0xF) return -1;
  uint32_t cp = (w >> 8) & 0xF;
  if (((w >> 25) & 7) == 6 || ((w >> 24) & 0xF) == 0xE) {
    if (cp == 10 || cp == 11) {
      if ((w & 0x0FB00E50) == 0x0E800A00 || (w & 0x0FBF0ED0) == 0x0EB10AC0) return VFP_DIVSQRT;
      return cp == 11 ? VFP_DP : VFP_SP;
    }
    return -1;
  }
  if (((w >> 24) & 0xF) == 0 && ((w >> 4) & 0xF) == 9) return MUL;
  if ((w & 0x0F900090) == 0x01000080) return MUL;           /* SMULxy/SMLAxy/SMULWy */
  if (((w >> 23) & 0x1F) == 0x0E && (w & 0x10)) return MUL; /* media multiplies 01110 */
  if (((w >> 26) & 3) == 1) { if (((w >> 25) & 1) && (w & 0x10)) return -1; return LDST; }
  if (((w >> 25) & 7) == 4) return LDST;
  if (((w >> 25) & 7) == 0 && (w & 0x90) == 0x90 && (w & 0x60)) return LDST;
  return -1;
}
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  size_t n = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &cnt[TOTAL], n);
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    size_t sz = qemu_plugin_insn_size(insn); uint32_t w = 0;
    memcpy(&w, qemu_plugin_insn_data(insn), sz > 4 ? 4 : sz);
    int c = classify(w, sz);
    if (c >= 0) qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &cnt[c], 1);
  }
}
static void at_exit(qemu_plugin_id_t id, void *p) {
  char buf[512]; int o = 0;
  for (int i = 0; i < NCAT; i++) o += snprintf(buf + o, sizeof buf - o, "%s=%" PRIu64 " ", names[i], cnt[i]);
  snprintf(buf + o, sizeof buf - o, "\n"); qemu_plugin_outs(buf);
}
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv) {
  qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
