// How an error message may show a string read from a file: quoted when it looks like an
// identifier (what every legitimate key, type name, dtype or tensor name is), otherwise only its
// length. An error about a file that is not what it was meant to be (a path pointed at someone
// else's data) thus never echoes what the file holds.
#ifndef STRATA_RUNTIME_BASE_SHOWN_VALUE_H_
#define STRATA_RUNTIME_BASE_SHOWN_VALUE_H_

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace strata {

inline std::string ShownValue(absl::string_view value) {
  bool identifier = !value.empty() && value.size() <= 64;
  for (char c : value) {
    identifier = identifier && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                                c == '-' || c == '.');
  }
  return identifier ? absl::StrCat("\"", value, "\"")
                    : absl::StrCat("(a string of ", value.size(), " bytes)");
}

}  // namespace strata

#endif  // STRATA_RUNTIME_BASE_SHOWN_VALUE_H_
