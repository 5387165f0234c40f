// ArgParser: the command-line flags of every app (`--name value`, `--name=value`, `--help`),
// declared once with their help text; unknown flags get a "did you mean" hint.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace zt {

class ArgParser {
 public:
  ArgParser(std::string program, std::string description);

  void add(const std::string& flag, std::string* value, const std::string& help);
  void add(const std::string& flag, int64_t* value, const std::string& help);
  void add(const std::string& flag, double* value, const std::string& help);
  void add_switch(const std::string& flag, bool* value, const std::string& help);  // no value

  // Parses argv; returns false when --help was asked for (usage already printed to stdout).
  // Bad input throws zt::Error naming the flag and what was expected.
  bool parse(int argc, const char* const* argv);
  std::string usage() const;
  // Whether the flag was given on the command line (not just defaulted).
  bool given(const std::string& flag) const;

 private:
  struct Flag {
    std::string name, help, default_text;
    bool takes_value = true;
    bool given = false;
    std::function<void(const std::string&)> set;
  };
  Flag& declare(const std::string& flag, const std::string& help, std::string default_text);
  const Flag* find(const std::string& name) const;

  std::string program_, description_;
  std::vector<Flag> flags_;
};

// The closest of `candidates` to `word` by edit distance, or "" when none is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace zt
