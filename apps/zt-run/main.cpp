// zt-run: starts a zerotrain program on several GPUs and nodes with DeepSpeed's launcher flags
// (--num_gpus, --num_nodes, --include/--exclude host:0,1, --hostfile, --master_addr) by building
// the matching `mpirun` command and replacing itself with it. --dry-run prints the command only.
//
//   zt-run --num_gpus 2 zt-mlp --steps 1000
//   zt-run --hostfile hosts --include node1:0,1@node2 zt-gpt --config ds_config.json
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "launch_plan.h"
#include "runtime/args.h"

namespace {

// GPUs this machine shows: the driver's list, narrowed by CUDA_VISIBLE_DEVICES when it is set.
int count_local_gpus() {
  namespace fs = std::filesystem;
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/driver/nvidia/gpus", ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && n > 0) {
    const std::string v = visible;
    int listed = v.empty() ? 0 : 1;
    for (char c : v) listed += c == ',';
    n = std::min(n, listed);
  }
  return n;
}

// The index of the program in argv: the first word that is not a launcher flag or its value.
int program_index(int argc, char** argv, const std::vector<std::string>& switches) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") return i + 1;
    if (a.rfind("-", 0) != 0) return i;
    const bool is_switch = a == "-h" || a == "--help" ||
                           std::find(switches.begin(), switches.end(), a) != switches.end();
    if (!is_switch && a.find('=') == std::string::npos) ++i;  // skip the flag's value
  }
  return argc;
}

int run(int argc, char** argv) {
  zt::run::LaunchRequest r;
  bool dry_run = false;
  zt::ArgParser args("zt-run",
                     "Launches PROGRAM [ARGS...] on one rank per GPU through mpirun, with DeepSpeed's\n"
                     "launcher flags: usage: zt-run [flags] PROGRAM [ARGS...]. Without --hostfile it\n"
                     "runs on this machine (on a CPU machine --num_gpus N starts N ranks).");
  args.add("--num_gpus", &r.num_gpus, "GPUs (ranks) per node (-1: all)");
  args.add("--num_nodes", &r.num_nodes, "nodes to use from the hostfile (-1: all)");
  args.add("--include", &r.include, "only these hosts/GPUs, e.g. node1:0,1@node2");
  args.add("--exclude", &r.exclude, "all but these hosts/GPUs, e.g. node1:3@node4");
  args.add("--hostfile", &r.hostfile, "file of 'hostname slots=N' lines");
  args.add("--master_addr", &r.master_addr, "exported as MASTER_ADDR to every rank");
  args.add("--master_port", &r.master_port, "exported as MASTER_PORT to every rank (-1: not set)");
  args.add("--launcher_args", &r.launcher_args, "extra arguments for mpirun, space-separated");
  args.add_switch("--dry-run", &dry_run, "print the mpirun command instead of running it");
  const int program_at = program_index(argc, argv, {"--dry-run"});
  std::vector<const char*> own(argv, argv + std::min(program_at, argc));
  if (own.size() > 1 && std::string(own.back()) == "--") own.pop_back();
  if (!args.parse(int(own.size()), own.data())) return 0;
  for (int i = program_at; i < argc; ++i) r.program.push_back(argv[i]);
  r.as_root = geteuid() == 0;
  r.local_gpus = count_local_gpus();
  const std::vector<std::string> cmd = zt::run::mpirun_command(r);
  if (dry_run) {
    std::printf("%s\n", zt::run::shell_join(cmd).c_str());
    return 0;
  }
  std::fprintf(stderr, "zt-run: %s\n", zt::run::shell_join(cmd).c_str());
  std::fflush(stderr);
  std::vector<char*> exec_argv;
  for (const std::string& a : cmd) exec_argv.push_back(const_cast<char*>(a.c_str()));
  exec_argv.push_back(nullptr);
  execvp(exec_argv[0], exec_argv.data());
  ZT_FAIL("cannot run mpirun (", std::strerror(errno), "); is Open MPI installed and on PATH?");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zt-run: error: %s\n", e.what());
    return 1;
  }
}
