"""Names of the files and columns one stage writes and another reads (the report, tests).

Kept in a module with no imports, so a reader of these files (the report) depends on the names only, not on
the code that computes them (``make`` rebuilds the report when a name changes, not when the deletion test's
arithmetic does).
"""

# The shipping rule's accuracy tolerance (common.report.pick): a candidate ships only within this many points of
# base's accuracy. Here because the LIME stage (which judges only what could ship) reads it too.
ACCURACY_TOLERANCE_PT = 1.0

# outputs/reports/deletion.csv (common.explain.deletion_report): one row per variant x check; the shipping gate is
# GATE. mean: the variant's mean per-instance curve distance to base; control_mean: the positive control's on the
# same instances; margin: CONTROL_FRACTION x control_mean; d_mean, lower, upper, p_equivalent, alpha_equivalent,
# n_to_decide, decides: common.explain.verdict.judge; n_excluded: instances without a positive base word.
DELETION_CSV = "deletion.csv"
DELETION_COLUMNS = ["variant", "check", "mean", "control_mean", "margin", "d_mean", "lower", "upper", "p_equivalent",
                    "alpha_equivalent", "verdict", "n", "n_excluded", "n_to_decide", "decides", "reason"]
DELETION_GATE = "same_evidence"

# outputs/reports/pos_analysis.csv (common.explain.pos): one row per variant (and the noise floor).
POS_CSV = "pos_analysis.csv"
POS_COLUMNS = ["variant", "n", "js_mean", "extra_js_mean", "lower", "upper", "margin", "verdict", "n_to_decide"]

# outputs/metrics/summary.csv (common.bench.run): one row per benchmarked variant, in the order measured.
SUMMARY_CSV = "summary.csv"
SUMMARY_VARIANT = "variant"
# BATCH_AGREEMENT: argmax agreement between batched prediction (the bench's batch size, length-sorted
# batches) and one-by-one prediction over the evaluated test rows. Dynamic int8 computes activation scales
# per batch, so a text's class can depend on its batch mates; other variants score 1.0 (up to float ties).
BATCH_AGREEMENT = "batch_agreement"
# THROUGHPUT_VS_PEER: throughput / the best peer's: the fastest measured of PEER_NAMES (each a system a user would
# pick instead, built from the baseline's folder and measured in the same run with the same protocol;
# common.bench.peers). PEER_RATIO_COLUMNS: throughput / each peer's, x_<peer> (empty when that peer was not
# measured). A peer's own row has PEER_CONFIG set (how it was built), every other row leaves it empty.
# LATENCY_THREADS: the thread count the latency columns were measured at (the best of those tried).
THROUGHPUT_VS_PEER = "x_best_peer"
# The peer modules' PEER_NAME, in the order measured (tests/test_bench_peer.py checks they agree).
PEER_NAMES = ("optimum_int8", "openvino_int8")
PEER_RATIO_COLUMNS = tuple(f"x_{name}" for name in PEER_NAMES)
BEST_PEER = "best_peer"
PEER_CONFIG = "peer_config"
LATENCY_THREADS = "latency_threads"
SUMMARY_COLUMNS = (
    SUMMARY_VARIANT, "status", "kind", "dtype", "device", "threads", "accuracy", "accuracy_delta_pt", "macro_f1",
    "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", LATENCY_THREADS, "throughput_samples_per_s",
    "throughput_ratio", THROUGHPUT_VS_PEER, *PEER_RATIO_COLUMNS, BEST_PEER, "size_mb", "parameters", "peak_rss_mb", "gpu_mem_peak_mb",
    "gpu_util_mean_percent", "accuracy_source", "host_load_1min", "model_sha256", BATCH_AGREEMENT, PEER_CONFIG,
)

# A variant's metrics record (common.bench.evaluation; the benchmark writes one per variant under its own folder):
# the keys the report needs to show a variant at all. A failed benchmark variant's record has STATUS != "ok"
# and no accuracy.
RECORD_VARIANT = "variant"
RECORD_ACCURACY = "accuracy"
RECORD_THROUGHPUT = "throughput_samples_per_s"
RECORD_STATUS = "status"
