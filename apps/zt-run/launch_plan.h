// zt-run's plan: which hosts and GPU slots take part, from DeepSpeed's launcher flags, and the
// `mpirun` command line that starts one rank per slot.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace zt::run {

struct HostSlots {
  std::string host;
  std::vector<int> slots;  // GPU indices on that host; local rank i uses slots[i]
  int total_slots = 0;     // what the hostfile (or the machine) offers
};

struct LaunchRequest {
  int64_t num_gpus = -1;   // per node; -1: all
  int64_t num_nodes = -1;  // -1: all
  std::string include, exclude;  // "host1:0,1@host2"
  std::string hostfile;          // "host slots=N" lines; empty: this machine only
  std::string master_addr;
  int64_t master_port = -1;
  std::string launcher_args;  // extra mpirun arguments, split on spaces
  bool as_root = false;       // Open MPI refuses root without --allow-run-as-root
  int local_gpus = 0;         // GPUs visible on this machine (used without a hostfile)
  std::vector<std::string> program;  // the program and its arguments
};

// Parses "host slots=N" lines ('#' comments, blank lines); errors name the file and line.
std::vector<HostSlots> parse_hostfile_text(const std::string& text, const std::string& origin);
// The hosts and slots after --include/--exclude/--num_nodes/--num_gpus, as DeepSpeed applies them.
std::vector<HostSlots> select_resources(const LaunchRequest& request);
// The mpirun argv (argv[0] = "mpirun").
std::vector<std::string> mpirun_command(const LaunchRequest& request);
// argv joined into one shell line, quoting words that need it.
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace zt::run
