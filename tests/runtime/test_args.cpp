// ArgParser: values, defaults, switches, --help and every kind of bad input.
#include <doctest/doctest.h>

#include "core/error.h"
#include "runtime/args.h"

namespace {

struct Flags {
  int64_t steps = 10;
  double lr = 0.5;
  std::string data = "default";
  bool verbose = false;
};

zt::ArgParser make_parser(Flags& f) {
  zt::ArgParser p("prog", "test program");
  p.add("--steps", &f.steps, "steps");
  p.add("--lr", &f.lr, "learning rate");
  p.add("--data", &f.data, "data dir");
  p.add_switch("--verbose", &f.verbose, "talk more");
  return p;
}

bool parse(zt::ArgParser& p, std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return p.parse(int(args.size()), args.data());
}

std::string error_of(std::vector<const char*> args) {
  Flags f;
  auto p = make_parser(f);
  try {
    parse(p, std::move(args));
  } catch (const zt::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("ArgParser reads values in both spellings and keeps defaults") {
  Flags f;
  auto p = make_parser(f);
  CHECK(parse(p, {"--steps", "42", "--lr=0.25", "--verbose"}));
  CHECK(f.steps == 42);
  CHECK(f.lr == doctest::Approx(0.25));
  CHECK(f.verbose);
  CHECK(f.data == "default");
  CHECK(p.given("--steps"));
  CHECK_FALSE(p.given("--data"));
  CHECK(p.usage().find("(default: default)") != std::string::npos);
}

TEST_CASE("ArgParser --help returns false") {
  Flags f;
  auto p = make_parser(f);
  CHECK_FALSE(parse(p, {"--help"}));
}

TEST_CASE("ArgParser errors name the flag and what was expected") {
  CHECK(error_of({"--stpes", "3"}).find("did you mean --steps?") != std::string::npos);
  CHECK(error_of({"--steps", "3x"}).find("expected an integer, got '3x'") != std::string::npos);
  CHECK(error_of({"--lr", "fast"}).find("expected a number, got 'fast'") != std::string::npos);
  CHECK(error_of({"--data"}).find("--data expects a value") != std::string::npos);
  CHECK(error_of({"--verbose=1"}).find("takes no value") != std::string::npos);
  CHECK(error_of({"--zzzzzzzz"}).find("unknown argument '--zzzzzzzz'") != std::string::npos);
}

TEST_CASE("closest_match finds near misses only") {
  CHECK(zt::closest_match("--epoch", {"--epochs", "--steps"}) == "--epochs");
  CHECK(zt::closest_match("--xyz", {"--epochs", "--steps"}).empty());
}
