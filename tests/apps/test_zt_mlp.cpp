// zt-mlp end to end: learning on random data and real MNIST, CSV output, and bad input.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "apps/app_runner.h"

using zt::test::number_after;
using zt::test::run_app;

TEST_CASE("zt-mlp --help lists its flags") {
  auto r = run_app("zt-mlp", "--help");
  CHECK(r.exit_code == 0);
  for (const char* flag : {"--steps", "--epochs", "--seed", "--csv", "--data", "--device"})
    CHECK_MESSAGE(r.output.find(flag) != std::string::npos, flag);
}

TEST_CASE("zt-mlp drives the loss down on the random dataset and writes a CSV") {
  const auto csv = std::filesystem::temp_directory_path() / "zt_mlp_test.csv";
  auto r = run_app("zt-mlp", "--steps 300 --print-every 50 --csv " + csv.string());
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  std::ifstream in(csv);
  std::string header, line, first, last;
  std::getline(in, header);
  CHECK(header.rfind("step,epoch,loss,lr", 0) == 0);
  while (std::getline(in, line)) {
    if (first.empty()) first = line;
    last = line;
  }
  auto loss_of = [](const std::string& row) {  // third column
    auto a = row.find(','), b = row.find(',', a + 1);
    return std::atof(row.substr(b + 1).c_str());
  };
  const double first_loss = loss_of(first), last_loss = loss_of(last);
  CHECK(first_loss > 1.0);
  CHECK(last_loss < 0.6 * first_loss);
  CHECK(number_after(r.output, "held-out accuracy ") > 70.0);
}

TEST_CASE("zt-mlp reaches 95% held-out accuracy on real MNIST") {
  const char* data = std::getenv("ZT_DATA_DIR");
  if (!data) {
    MESSAGE("ZT_DATA_DIR is unset: skipping the real-MNIST run");
    return;
  }
  auto r = run_app("zt-mlp", std::string("--data ") + data + "/mnist --epochs 5 --print-every 1000");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  MESSAGE(r.output.substr(r.output.rfind("done:")));
  CHECK(number_after(r.output, "held-out accuracy ") >= 95.0);
}

TEST_CASE("zt-mlp rejects bad input with a clear message") {
  auto unknown = run_app("zt-mlp", "--stesp 3");
  CHECK(unknown.exit_code != 0);
  CHECK(unknown.output.find("unknown argument '--stesp'") != std::string::npos);
  CHECK(unknown.output.find("did you mean --steps") != std::string::npos);

  auto missing = run_app("zt-mlp", "--data /nonexistent/mnist");
  CHECK(missing.exit_code != 0);
  CHECK(missing.output.find("/nonexistent/mnist") != std::string::npos);

  auto bad_number = run_app("zt-mlp", "--steps ten");
  CHECK(bad_number.exit_code != 0);
  CHECK(bad_number.output.find("expected an integer") != std::string::npos);

  auto no_value = run_app("zt-mlp", "--steps");
  CHECK(no_value.exit_code != 0);
  CHECK(no_value.output.find("expects a value") != std::string::npos);
}

TEST_CASE("the README's example program trains") {
  auto r = run_app("example_my_model", "");
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("loss ") != std::string::npos);
}

TEST_CASE("the README quotes the example program verbatim") {
  const char* src = std::getenv("ZT_SOURCE_DIR");
  REQUIRE_MESSAGE(src != nullptr, "ZT_SOURCE_DIR is set by CTest");
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string example = slurp(std::string(src) + "/docs/examples/my_model.cpp");
  REQUIRE(example.size() > 100);
  CHECK(slurp(std::string(src) + "/README.md").find(example) != std::string::npos);
}
