// ArgParser implementation.
#include "runtime/args.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace zt {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

template <typename T>
T parse_number(const std::string& flag, const std::string& text, const char* expected) {
  std::istringstream is(text);
  T v{};
  is >> v;
  ZT_CHECK(!is.fail() && is.eof(), "flag ", flag, ": expected ", expected, ", got '", text, "'");
  return v;
}

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

ArgParser::ArgParser(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {}

ArgParser::Flag& ArgParser::declare(const std::string& flag, const std::string& help,
                                    std::string default_text) {
  ZT_CHECK(flag.rfind("--", 0) == 0, "flags start with --, got '", flag, "'");
  ZT_CHECK(find(flag) == nullptr, "flag ", flag, " declared twice");
  flags_.push_back(Flag{flag, help, std::move(default_text)});
  return flags_.back();
}

void ArgParser::add(const std::string& flag, std::string* value, const std::string& help) {
  declare(flag, help, *value).set = [value](const std::string& s) { *value = s; };
}

void ArgParser::add(const std::string& flag, int64_t* value, const std::string& help) {
  declare(flag, help, std::to_string(*value)).set = [flag, value](const std::string& s) {
    *value = parse_number<int64_t>(flag, s, "an integer");
  };
}

void ArgParser::add(const std::string& flag, double* value, const std::string& help) {
  declare(flag, help, number_text(*value)).set = [flag, value](const std::string& s) {
    *value = parse_number<double>(flag, s, "a number");
  };
}

void ArgParser::add_switch(const std::string& flag, bool* value, const std::string& help) {
  Flag& f = declare(flag, help, "");
  f.takes_value = false;
  f.set = [value](const std::string&) { *value = true; };
}

const ArgParser::Flag* ArgParser::find(const std::string& name) const {
  for (const auto& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

bool ArgParser::given(const std::string& flag) const {
  const Flag* f = find(flag);
  return f && f->given;
}

bool ArgParser::parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    std::string value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    Flag* flag = const_cast<Flag*>(find(arg));
    if (!flag) {
      std::vector<std::string> names;
      for (const auto& f : flags_) names.push_back(f.name);
      const std::string hint = closest_match(arg, names);
      ZT_FAIL(program_, ": unknown argument '", arg, "'",
              hint.empty() ? std::string() : " (did you mean " + hint + "?)", "; see --help");
    }
    if (flag->takes_value && !has_inline_value) {
      ZT_CHECK(i + 1 < argc, program_, ": flag ", arg, " expects a value; see --help");
      value = argv[++i];
    }
    ZT_CHECK(flag->takes_value || !has_inline_value, program_, ": flag ", arg, " takes no value");
    flag->set(value);
    flag->given = true;
  }
  return true;
}

std::string ArgParser::usage() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [flags]\n\n" << description_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string left = "  " + f.name + (f.takes_value ? " VALUE" : "");
    if (left.size() < 24) left.resize(24, ' ');
    os << left << " " << f.help;
    if (f.takes_value && !f.default_text.empty()) os << " (default: " << f.default_text << ")";
    os << "\n";
  }
  os << "  --help                 print this help and exit\n";
  return os.str();
}

}  // namespace zt
