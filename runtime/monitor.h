// Monitor: what a training run reports (DESIGN.md §6). A line every steps_per_print optimizer
// steps (step, loss, lr, loss scale, samples/s or tokens/s, memory in use/peak from the
// allocator's statistics), a progress bar with ETA when the output is a terminal, one CSV row per
// reported step, the wall-clock breakdown (forward/backward/reduction/step) when enabled, and one
// line per skipped step. Only the lead rank (rank 0) writes anything; the others stay silent.
#pragma once
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "core/allocator.h"
#include "runtime/config.h"

namespace zt {

// Seconds spent in each phase of training since the last report.
struct StepTimes {
  double forward = 0, backward = 0, reduction = 0, step = 0;
};

struct MonitorRecord {
  int64_t step = 0;        // global (optimizer) step
  double loss = 0;         // mean over the global batch of the steps covered
  double lr = 0;
  double loss_scale = 1;
  int64_t samples = 0;     // samples (all ranks) processed since the last report
  int64_t tokens = 0;      // tokens likewise; 0 when the program does not count tokens
  double seconds = 0;      // wall time since the last report
  StepTimes times;
  MemoryStats memory;
};

struct MonitorOptions {
  int64_t steps_per_print = 10;  // 0: no periodic lines
  std::string csv_path;          // "": no CSV
  bool wall_clock_breakdown = false;
  bool lead = true;              // rank 0: the only one that prints and writes
  int64_t total_steps = 0;       // > 0: progress bar with ETA when `out` is a terminal
  std::FILE* out = stdout;
};

// steps_per_print, wall_clock_breakdown and csv_monitor (<output_path>/<job_name>/train.csv).
MonitorOptions monitor_options_from_config(const Config& config, bool lead);

class Monitor {
 public:
  explicit Monitor(MonitorOptions options);

  bool reports_at(int64_t step) const {
    return options_.steps_per_print > 0 && step % options_.steps_per_print == 0;
  }
  // The line (and CSV row) for a reported step.
  void report(const MonitorRecord& record);
  // One line for a step skipped because of non-finite gradients.
  void skipped_step(int64_t step, const std::string& detail);
  // Redraws the progress bar (a terminal only) after `step` of total_steps.
  void progress(int64_t step);

  // "step 20 | loss 0.6931 | lr 1.00e-03 | loss scale 65536 | 1234 samples/s | mem 1.2 MiB (peak 3.4 MiB)"
  // plus " | fwd 1.0 ms bwd 2.0 ms reduce 0.1 ms step 0.5 ms" (per step) with the breakdown.
  static std::string format_line(const MonitorRecord& record, bool wall_clock_breakdown);
  static const char* csv_header();
  static std::string csv_row(const MonitorRecord& record);

  bool terminal() const { return terminal_; }

 private:
  void clear_progress();

  MonitorOptions options_;
  std::ofstream csv_;
  bool terminal_ = false;
  bool bar_shown_ = false;
  double start_ = 0;  // steady clock seconds at the first progress call
};

}  // namespace zt
