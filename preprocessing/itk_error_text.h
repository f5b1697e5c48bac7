#pragma once
// ITK exception texts span several lines of file/line noise; error messages keep only the
// description, on one line.
#include <cctype>
#include <string>

namespace brainage::preprocessing {

inline std::string itk_error_text(const std::string& text) {
  std::string out = text;
  const auto desc = out.find("Description:");
  if (desc != std::string::npos) out = out.substr(desc + 12);
  const auto nl = out.find('\n');
  if (nl != std::string::npos) out = out.substr(0, nl);
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.front()))) out.erase(out.begin());
  return out;
}

}  // namespace brainage::preprocessing
