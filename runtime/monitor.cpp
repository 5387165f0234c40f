// Monitor: periodic lines, CSV rows, progress bar and skipped-step lines (runtime/monitor.h).
#include "runtime/monitor.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>

#include "core/error.h"

namespace zt {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string bytes_text(int64_t bytes) {
  char buf[32];
  const double b = double(bytes);
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  return buf;
}

std::string clock_text(double seconds) {
  const int64_t s = int64_t(std::max(0.0, seconds) + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                (long long)(s % 60));
  return buf;
}

}  // namespace

MonitorOptions monitor_options_from_config(const Config& config, bool lead) {
  MonitorOptions o;
  o.steps_per_print = config.steps_per_print;
  o.wall_clock_breakdown = config.wall_clock_breakdown;
  o.lead = lead;
  if (config.csv_monitor.enabled) {
    const std::string& out = config.csv_monitor.output_path;
    const std::filesystem::path dir = out.empty() ? std::filesystem::path(".") : std::filesystem::path(out);
    o.csv_path = (dir / config.csv_monitor.job_name / "train.csv").string();
  }
  return o;
}

Monitor::Monitor(MonitorOptions options) : options_(std::move(options)) {
  if (!options_.lead) return;
  terminal_ = options_.out != nullptr && isatty(fileno(options_.out));
  if (!options_.csv_path.empty()) {
    const std::filesystem::path path(options_.csv_path);
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    csv_.open(path);
    ZT_CHECK(csv_.good(), "monitor: cannot write the CSV file '", options_.csv_path, "'",
             ec ? " (" + ec.message() + ")" : "");
    csv_ << csv_header() << "\n";
    csv_.flush();
  }
}

std::string Monitor::format_line(const MonitorRecord& r, bool wall_clock_breakdown) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %lld | loss %.4f | lr %.2e | loss scale %g", (long long)r.step, r.loss,
                r.lr, r.loss_scale);
  std::string line = buf;
  const double secs = std::max(r.seconds, 1e-9);
  if (r.tokens > 0) std::snprintf(buf, sizeof buf, " | %.0f tokens/s", r.tokens / secs);
  else std::snprintf(buf, sizeof buf, " | %.0f samples/s", r.samples / secs);
  line += buf;
  line += " | mem " + bytes_text(r.memory.total.in_use) + " (peak " + bytes_text(r.memory.total.peak) + ")";
  if (wall_clock_breakdown) {
    std::snprintf(buf, sizeof buf, " | fwd %.2f ms bwd %.2f ms reduce %.2f ms step %.2f ms",
                  1e3 * r.times.forward, 1e3 * r.times.backward, 1e3 * r.times.reduction, 1e3 * r.times.step);
    line += buf;
  }
  return line;
}

const char* Monitor::csv_header() {
  return "step,loss,lr,loss_scale,samples_per_s,tokens_per_s,memory_in_use,memory_peak,"
         "forward_s,backward_s,reduction_s,step_s";
}

std::string Monitor::csv_row(const MonitorRecord& r) {
  const double secs = std::max(r.seconds, 1e-9);
  std::ostringstream s;
  s << r.step << "," << r.loss << "," << r.lr << "," << r.loss_scale << "," << r.samples / secs << ","
    << r.tokens / secs << "," << r.memory.total.in_use << "," << r.memory.total.peak << "," << r.times.forward
    << "," << r.times.backward << "," << r.times.reduction << "," << r.times.step;
  return s.str();
}

void Monitor::clear_progress() {
  if (!bar_shown_) return;
  std::fputs("\r\033[K", options_.out);
  bar_shown_ = false;
}

void Monitor::report(const MonitorRecord& record) {
  if (!options_.lead) return;
  if (options_.steps_per_print > 0 && options_.out) {
    clear_progress();
    std::fprintf(options_.out, "%s\n", format_line(record, options_.wall_clock_breakdown).c_str());
    std::fflush(options_.out);
  }
  if (csv_.is_open()) {
    csv_ << csv_row(record) << "\n";
    csv_.flush();
  }
}

void Monitor::skipped_step(int64_t step, const std::string& detail) {
  if (!options_.lead || !options_.out) return;
  clear_progress();
  std::fprintf(options_.out, "step %lld skipped: non-finite gradients%s%s\n", (long long)step,
               detail.empty() ? "" : "; ", detail.c_str());
  std::fflush(options_.out);
}

void Monitor::progress(int64_t step) {
  if (!options_.lead || !terminal_ || options_.total_steps <= 0) return;
  const double now = now_seconds();
  if (start_ == 0) start_ = now;
  const double fraction = std::min(1.0, double(step) / double(options_.total_steps));
  const double elapsed = now - start_;
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
  constexpr int kWidth = 30;
  const int filled = int(fraction * kWidth);
  std::string bar(size_t(filled), '#');
  bar.append(size_t(kWidth - filled), '.');
  std::fprintf(options_.out, "\r[%s] %lld/%lld %3.0f%% elapsed %s ETA %s", bar.c_str(), (long long)step,
               (long long)options_.total_steps, 100 * fraction, clock_text(elapsed).c_str(),
               clock_text(eta).c_str());
  bar_shown_ = true;
  if (step >= options_.total_steps) {
    std::fputs("\n", options_.out);
    bar_shown_ = false;
  }
  std::fflush(options_.out);
}

}  // namespace zt
