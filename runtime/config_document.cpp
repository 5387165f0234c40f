// Config text to a JSON tree: nlohmann for JSON, yaml-cpp for YAML (scalars typed by YAML 1.2's
// core schema). Syntax errors and duplicate keys are reported as origin:line:column, so the user
// can jump to the spot; everything after this step works on the tree alone.
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <regex>
#include <set>

#include "core/error.h"
#include "runtime/config.h"

namespace zt {
namespace {

using nlohmann::json;

// nlohmann reports the byte offset (1-based) of the offending character.
std::pair<size_t, size_t> line_column(const std::string& text, size_t byte) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

// "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..." -> the
// part after the location, which says what was expected.
std::string strip_nlohmann_prefix(const std::string& what) {
  const auto at = what.find("parse error");
  const auto colon = at == std::string::npos ? std::string::npos : what.find(": ", at);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

// DeepSpeed rejects duplicate keys (dict_raise_error_on_duplicate_keys); so do we. nlohmann keeps
// the last one silently, so the parser callback tracks the keys of each open object.
json parse_json_text(const std::string& text, const std::string& origin) {
  struct Frame {
    bool is_object;
    std::set<std::string> keys;
    std::string current;
  };
  std::vector<Frame> stack;
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: stack.push_back({true, {}, ""}); break;
      case json::parse_event_t::array_start: stack.push_back({false, {}, ""}); break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end: stack.pop_back(); break;
      case json::parse_event_t::key: {
        Frame& f = stack.back();
        f.current = parsed.get<std::string>();
        if (!f.keys.insert(f.current).second && duplicate.empty()) {
          for (const auto& s : stack) {
            if (s.is_object && !s.current.empty()) duplicate += (duplicate.empty() ? "" : ".") + s.current;
          }
        }
        break;
      }
      case json::parse_event_t::value: break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text, callback);
  } catch (const json::parse_error& e) {
    const auto [line, column] = line_column(text, e.byte);
    ZT_FAIL(origin, ":", line, ":", column, ": JSON syntax error: ", strip_nlohmann_prefix(e.what()));
  }
  ZT_CHECK(duplicate.empty(), origin, ": duplicate key '", duplicate,
           "' (each key may appear once per object)");
  return doc;
}

// A plain (unquoted) YAML scalar typed as YAML 1.2's core schema does.
json yaml_plain_scalar(const std::string& s) {
  static const std::regex null_re("^(~|null|Null|NULL|)$");
  static const std::regex true_re("^(true|True|TRUE)$"), false_re("^(false|False|FALSE)$");
  static const std::regex int_re("^[-+]?[0-9]+$");
  static const std::regex float_re(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
  if (std::regex_match(s, null_re)) return nullptr;
  if (std::regex_match(s, true_re)) return true;
  if (std::regex_match(s, false_re)) return false;
  if (std::regex_match(s, int_re)) {
    int64_t v = 0;
    const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
    const auto r = std::from_chars(begin, s.data() + s.size(), v);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return v;
    return std::stod(s);  // too large for int64: keep it as a number
  }
  if (std::regex_match(s, float_re)) return std::stod(s);
  return s;
}

json yaml_to_json(const YAML::Node& node, const std::string& path, const std::string& origin) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar:
      // "!" marks a quoted scalar, "!!str" an explicit string: both stay strings.
      if (node.Tag() == "?") return yaml_plain_scalar(node.Scalar());
      return node.Scalar();
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (size_t i = 0; i < node.size(); ++i) {
        out.push_back(yaml_to_json(node[i], path + "[" + std::to_string(i) + "]", origin));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        const std::string key = kv.first.as<std::string>();
        const std::string full = path.empty() ? key : path + "." + key;
        const auto mark = kv.first.Mark();
        ZT_CHECK(!out.contains(key), origin, ":", mark.line + 1, ":", mark.column + 1,
                 ": duplicate key '", full, "' (each key may appear once per mapping)");
        out[key] = yaml_to_json(kv.second, full, origin);
      }
      return out;
    }
  }
  return nullptr;
}

json parse_yaml_text(const std::string& text, const std::string& origin) {
  try {
    return yaml_to_json(YAML::Load(text), "", origin);
  } catch (const YAML::ParserException& e) {
    ZT_FAIL(origin, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg);
  } catch (const YAML::Exception& e) {  // e.g. a key that is a list, not a name
    ZT_FAIL(origin, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML error: ", e.msg,
            " (keys must be plain names)");
  }
}

}  // namespace

json parse_config_document(const std::string& text, ConfigFormat format, const std::string& origin) {
  if (format == ConfigFormat::detect) {
    // A JSON config is an object, so its first non-blank character is '{'.
    const auto first = text.find_first_not_of(" \t\r\n");
    format = (first != std::string::npos && text[first] == '{') ? ConfigFormat::json : ConfigFormat::yaml;
  }
  json doc = format == ConfigFormat::json ? parse_json_text(text, origin) : parse_yaml_text(text, origin);
  if (doc.is_null()) doc = json::object();  // an empty YAML file: every key takes its default
  ZT_CHECK(doc.is_object(), origin, ": expected a mapping of keys to values at the top level, got ",
           doc.is_array() ? "a list" : doc.dump());
  return doc;
}

}  // namespace zt
