// zt-run's plan: resource selection (DeepSpeed's semantics) and the mpirun command line.
//
// Note [zt-run command line]
// One host using all its slots in order: `mpirun -np N -H host:N program args`. When a host
// runs on a subset of its GPUs (--include/--exclude/--num_gpus), its ranks are one MPMD app
// context started through `env CUDA_VISIBLE_DEVICES=...`, so local rank i lands on the i-th
// selected GPU: `mpirun ... -np 2 -H a:2 env CUDA_VISIBLE_DEVICES=0,1 prog : -np 1 -H b:1 env
// CUDA_VISIBLE_DEVICES=3 prog`. Ranks are numbered host by host, slot by slot. Multi-node runs are
// plain Open MPI (ssh to the hosts); zerotrain bootstraps over MPI and MASTER_ADDR/PORT are only
// exported for programs that read them.
#include "launch_plan.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"

namespace zt::run {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream is(s);
  while (std::getline(is, item, sep))
    if (!trim(item).empty()) out.push_back(trim(item));
  return out;
}

int parse_int(const std::string& text, const std::string& what) {
  size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZT_CHECK(used == text.size() && v >= 0, what, ": expected a non-negative integer, found '", text, "'");
  return v;
}

// "host1:0,1@host2" -> {host1: [0, 1], host2: []} (empty: every slot), in the order given.
std::vector<std::pair<std::string, std::vector<int>>> parse_filter(const std::string& text,
                                                                    const char* flag) {
  std::vector<std::pair<std::string, std::vector<int>>> out;
  for (const std::string& part : split(text, '@')) {
    const auto colon = part.find(':');
    std::vector<int> slots;
    if (colon != std::string::npos)
      for (const std::string& s : split(part.substr(colon + 1), ','))
        slots.push_back(parse_int(s, std::string(flag) + " slot of '" + part + "'"));
    out.emplace_back(trim(part.substr(0, colon)), slots);
  }
  ZT_CHECK(!out.empty(), flag, ": expected 'host[:slot,slot]@host...', found '", text, "'");
  return out;
}

HostSlots* find_host(std::vector<HostSlots>& hosts, const std::string& name, const char* flag) {
  for (HostSlots& h : hosts)
    if (h.host == name) return &h;
  std::string known;
  for (const HostSlots& h : hosts) known += (known.empty() ? "" : ", ") + h.host;
  ZT_FAIL(flag, ": host '", name, "' is not among the hosts (", known, ")");
}

void check_slot(const HostSlots& h, int slot, const char* flag) {
  ZT_CHECK(slot < h.total_slots, flag, ": slot ", slot, " of host '", h.host, "' does not exist (it has ",
           h.total_slots, " slots)");
}

void apply_include(std::vector<HostSlots>& hosts, const std::string& text) {
  std::vector<HostSlots> kept;
  for (const auto& [name, slots] : parse_filter(text, "--include")) {
    HostSlots h = *find_host(hosts, name, "--include");
    if (!slots.empty()) {
      for (int s : slots) check_slot(h, s, "--include");
      h.slots = slots;
    }
    kept.push_back(h);
  }
  hosts = kept;
}

void apply_exclude(std::vector<HostSlots>& hosts, const std::string& text) {
  for (const auto& [name, slots] : parse_filter(text, "--exclude")) {
    HostSlots* h = find_host(hosts, name, "--exclude");
    if (slots.empty()) {
      h->slots.clear();
      continue;
    }
    for (int s : slots) {
      check_slot(*h, s, "--exclude");
      h->slots.erase(std::remove(h->slots.begin(), h->slots.end(), s), h->slots.end());
    }
  }
  std::erase_if(hosts, [](const HostSlots& h) { return h.slots.empty(); });
}

bool uses_all_slots(const HostSlots& h) {
  if (int(h.slots.size()) != h.total_slots) return false;
  for (int i = 0; i < h.total_slots; ++i)
    if (h.slots[size_t(i)] != i) return false;
  return true;
}

}  // namespace

std::vector<HostSlots> parse_hostfile_text(const std::string& text, const std::string& origin) {
  std::vector<HostSlots> hosts;
  std::istringstream is(text);
  std::string line;
  for (int number = 1; std::getline(is, line); ++number) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    std::istringstream words(line);
    std::string host, slots_word, extra;
    words >> host >> slots_word >> extra;
    const std::string where = origin + ":" + std::to_string(number);
    ZT_CHECK(slots_word.rfind("slots=", 0) == 0 && extra.empty(), where,
             ": expected 'hostname slots=N', found '", line, "'");
    const int n = parse_int(slots_word.substr(6), where + " slots");
    ZT_CHECK(n > 0, where, ": host '", host, "' has slots=0");
    for (const HostSlots& h : hosts) ZT_CHECK(h.host != host, where, ": host '", host, "' is listed twice");
    HostSlots h{host, {}, n};
    for (int s = 0; s < n; ++s) h.slots.push_back(s);
    hosts.push_back(h);
  }
  ZT_CHECK(!hosts.empty(), origin, ": the hostfile lists no hosts");
  return hosts;
}

std::vector<HostSlots> select_resources(const LaunchRequest& r) {
  ZT_CHECK(r.include.empty() || r.exclude.empty(), "--include and --exclude cannot be used together");
  ZT_CHECK((r.num_nodes < 0 && r.num_gpus < 0) || (r.include.empty() && r.exclude.empty()),
           "--num_nodes/--num_gpus cannot be combined with --include/--exclude (as in DeepSpeed)");
  ZT_CHECK(r.num_nodes != 0 && r.num_gpus != 0, "--num_nodes and --num_gpus must be positive (or -1: all)");
  std::vector<HostSlots> hosts;
  if (!r.hostfile.empty()) {
    std::ifstream in(r.hostfile);
    ZT_CHECK(in.good(), "--hostfile: cannot read '", r.hostfile, "'");
    std::stringstream text;
    text << in.rdbuf();
    hosts = parse_hostfile_text(text.str(), r.hostfile);
  } else {
    // This machine: its GPUs, or on a CPU machine as many ranks as --num_gpus asks for.
    int slots = r.local_gpus > 0 ? r.local_gpus : std::max<int>(1, int(r.num_gpus));
    ZT_CHECK(r.num_gpus <= slots, "--num_gpus ", r.num_gpus, ": this machine has only ", slots, " GPUs");
    HostSlots h{"localhost", {}, slots};
    for (int s = 0; s < slots; ++s) h.slots.push_back(s);
    hosts.push_back(h);
  }
  if (!r.include.empty()) apply_include(hosts, r.include);
  if (!r.exclude.empty()) apply_exclude(hosts, r.exclude);
  if (r.num_nodes > 0) {
    ZT_CHECK(r.num_nodes <= int64_t(hosts.size()), "--num_nodes ", r.num_nodes, ": only ", hosts.size(),
             " hosts are available");
    hosts.resize(size_t(r.num_nodes));
  }
  if (r.num_gpus > 0)
    for (HostSlots& h : hosts) {
      ZT_CHECK(r.num_gpus <= int64_t(h.slots.size()), "--num_gpus ", r.num_gpus, ": host '", h.host,
               "' has only ", h.slots.size(), " slots");
      h.slots.resize(size_t(r.num_gpus));
    }
  ZT_CHECK(!hosts.empty(), "no hosts are left after --include/--exclude");
  return hosts;
}

std::vector<std::string> mpirun_command(const LaunchRequest& r) {
  ZT_CHECK(!r.program.empty(), "expected a program to launch after the flags, e.g. zt-run --num_gpus 2 "
           "zt-mlp --steps 100");
  const std::vector<HostSlots> hosts = select_resources(r);
  std::vector<std::string> cmd{"mpirun"};
  if (r.as_root) cmd.push_back("--allow-run-as-root");
  // Ranks start OpenMP thread teams: binding each rank to one core would serialise them.
  cmd.insert(cmd.end(), {"--bind-to", "none"});
  if (!r.master_addr.empty()) cmd.insert(cmd.end(), {"-x", "MASTER_ADDR=" + r.master_addr});
  if (r.master_port >= 0) cmd.insert(cmd.end(), {"-x", "MASTER_PORT=" + std::to_string(r.master_port)});
  for (const std::string& a : split(r.launcher_args, ' ')) cmd.push_back(a);
  const bool plain = std::all_of(hosts.begin(), hosts.end(), uses_all_slots);
  auto add_program = [&] { cmd.insert(cmd.end(), r.program.begin(), r.program.end()); };
  if (plain) {
    int total = 0;
    std::string host_list;
    for (const HostSlots& h : hosts) {
      total += int(h.slots.size());
      host_list += (host_list.empty() ? "" : ",") + h.host + ":" + std::to_string(h.slots.size());
    }
    cmd.insert(cmd.end(), {"-np", std::to_string(total)});
    if (hosts.size() > 1 || hosts[0].host != "localhost") cmd.insert(cmd.end(), {"-H", host_list});
    add_program();
    return cmd;
  }
  for (size_t i = 0; i < hosts.size(); ++i) {  // Note [zt-run command line]
    const HostSlots& h = hosts[i];
    if (i > 0) cmd.push_back(":");
    std::string visible;
    for (int s : h.slots) visible += (visible.empty() ? "" : ",") + std::to_string(s);
    cmd.insert(cmd.end(), {"-np", std::to_string(h.slots.size()), "-H",
                           h.host + ":" + std::to_string(h.slots.size()), "env",
                           "CUDA_VISIBLE_DEVICES=" + visible});
    add_program();
  }
  return cmd;
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789-_./:=,@%+") == std::string::npos;
    std::string word = a;
    if (!plain) {
      word = "'";
      for (char c : a) word += c == '\'' ? std::string("'\\''") : std::string(1, c);
      word += "'";
    }
    out += (out.empty() ? "" : " ") + word;
  }
  return out;
}

}  // namespace zt::run
