// See chat_template.h. Three stages: the template text is cut into text, {{ }} and {% %} pieces
// (comments, whitespace control, trim_blocks and lstrip_blocks applied there); a recursive-
// descent parser turns the pieces into a tree of statements and expressions; the renderer walks
// the tree over values (Python/Jinja semantics: truthiness, `and`/`or` returning an operand,
// negative indexes, reference semantics for lists, dicts and namespaces).
#include "runtime/data/chat_template.h"

#include <cmath>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

// ---------------------------------------------------------------------------------------------
// Values.

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // Insertion order, as Python's dict.

struct Value {
  enum Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict };
  Kind kind = kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  bool is_namespace = false;

  static Value None() { return Make(kNone); }
  static Value Bool(bool v) {
    Value x = Make(kBool);
    x.b = v;
    return x;
  }
  static Value Int(int64_t v) {
    Value x = Make(kInt);
    x.i = v;
    return x;
  }
  static Value Float(double v) {
    Value x = Make(kFloat);
    x.f = v;
    return x;
  }
  static Value Str(std::string v) {
    Value x = Make(kString);
    x.s = std::move(v);
    return x;
  }
  static Value NewList(List items = {}) {
    Value x = Make(kList);
    x.list = std::make_shared<List>(std::move(items));
    return x;
  }
  static Value NewDict(Dict items = {}) {
    Value x = Make(kDict);
    x.dict = std::make_shared<Dict>(std::move(items));
    return x;
  }
  static Value Make(Kind k) {
    Value x;
    x.kind = k;
    return x;
  }

  bool Truthy() const {
    switch (kind) {
      case kUndefined:
      case kNone:
        return false;
      case kBool:
        return b;
      case kInt:
        return i != 0;
      case kFloat:
        return f != 0;
      case kString:
        return !s.empty();
      case kList:
        return !list->empty();
      case kDict:
        return !dict->empty();
    }
    return false;
  }
  bool IsNumber() const { return kind == kInt || kind == kFloat || kind == kBool; }
  double AsDouble() const {
    return kind == kFloat ? f : static_cast<double>(kind == kBool ? b : i);
  }

  const Value* Find(absl::string_view key) const {
    if (kind != kDict) return nullptr;
    for (const auto& [k, v] : *dict) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  void Set(const std::string& key, Value v) {
    for (auto& [k, old] : *dict) {
      if (k == key) {
        old = std::move(v);
        return;
      }
    }
    dict->emplace_back(key, std::move(v));
  }
};

const char* KindName(Value::Kind k) {
  static const char* names[] = {"undefined", "none",   "boolean", "integer",
                                "float",     "string", "list",    "dict"};
  return names[k];
}

Value FromJson(const nlohmann::json& j) {
  if (j.is_null()) return Value::None();
  if (j.is_boolean()) return Value::Bool(j.get<bool>());
  if (j.is_number_integer()) return Value::Int(j.get<int64_t>());
  if (j.is_number()) return Value::Float(j.get<double>());
  if (j.is_string()) return Value::Str(j.get<std::string>());
  if (j.is_array()) {
    Value v = Value::NewList();
    for (const auto& e : j) v.list->push_back(FromJson(e));
    return v;
  }
  Value v = Value::NewDict();
  for (auto it = j.begin(); it != j.end(); ++it) v.dict->emplace_back(it.key(), FromJson(*it));
  return v;
}

std::string FormatFloat(double f) {
  if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 1e16) {
    return absl::StrCat(static_cast<int64_t>(f), ".0");
  }
  return absl::StrCat(f);
}

// Python's json.dumps(ensure_ascii=False) with its default separators, as transformers' tojson.
std::string ToJson(const Value& v) {
  switch (v.kind) {
    case Value::kUndefined:
    case Value::kNone:
      return "null";
    case Value::kBool:
      return v.b ? "true" : "false";
    case Value::kInt:
      return absl::StrCat(v.i);
    case Value::kFloat:
      return FormatFloat(v.f);
    case Value::kString:
      return nlohmann::json(v.s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    case Value::kList: {
      std::vector<std::string> parts;
      for (const Value& e : *v.list) parts.push_back(ToJson(e));
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    case Value::kDict: {
      std::vector<std::string> parts;
      for (const auto& [k, e] : *v.dict) {
        parts.push_back(absl::StrCat(ToJson(Value::Str(k)), ": ", ToJson(e)));
      }
      return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
    }
  }
  return "";
}

std::string Repr(const Value& v);

// How {{ v }} prints a value (Python's str()).
std::string ToText(const Value& v) {
  switch (v.kind) {
    case Value::kUndefined:
      return "";
    case Value::kNone:
      return "None";
    case Value::kBool:
      return v.b ? "True" : "False";
    case Value::kInt:
      return absl::StrCat(v.i);
    case Value::kFloat:
      return FormatFloat(v.f);
    case Value::kString:
      return v.s;
    default:
      return Repr(v);
  }
}

std::string Repr(const Value& v) {
  if (v.kind == Value::kString) {
    std::string out = "'";
    for (char c : v.s) {
      if (c == '\'' || c == '\\') out.push_back('\\');
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out.push_back(c);
    }
    return out + "'";
  }
  if (v.kind == Value::kList) {
    std::vector<std::string> parts;
    for (const Value& e : *v.list) parts.push_back(Repr(e));
    return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
  }
  if (v.kind == Value::kDict) {
    std::vector<std::string> parts;
    for (const auto& [k, e] : *v.dict)
      parts.push_back(absl::StrCat(Repr(Value::Str(k)), ": ", Repr(e)));
    return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
  }
  return ToText(v);
}

bool Equal(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) return a.AsDouble() == b.AsDouble();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::kUndefined:
    case Value::kNone:
      return true;
    case Value::kString:
      return a.s == b.s;
    case Value::kList:
      if (a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i) {
        if (!Equal((*a.list)[i], (*b.list)[i])) return false;
      }
      return true;
    case Value::kDict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* other = b.Find(k);
        if (other == nullptr || !Equal(v, *other)) return false;
      }
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Template text -> pieces.

struct Piece {
  enum Kind { kText, kOutput, kStatement } kind;
  std::string text;  // The text, or the tag's inside.
  int line;
};

absl::Status SyntaxError(absl::string_view source, int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": ", what));
}

// Jinja's whitespace handling as transformers sets it up: one trailing newline of the template
// dropped; lstrip_blocks (spaces and tabs from a line start up to a {% or {# tag go);
// trim_blocks (the first newline after a %} or #} goes); then {%- -%} {{- -}} control.
absl::StatusOr<std::vector<Piece>> Cut(std::string text, absl::string_view source) {
  if (absl::EndsWith(text, "\n")) text.pop_back();
  std::vector<Piece> pieces;
  size_t pos = 0;
  int line = 1;
  bool strip_next = false;  // The previous tag ended with "-".
  while (pos < text.size()) {
    size_t open = pos;
    while ((open = text.find('{', open)) != std::string::npos && open + 1 < text.size() &&
           !absl::StrContains("{%#", text[open + 1])) {
      ++open;
    }
    if (open != std::string::npos && open + 1 >= text.size()) open = std::string::npos;
    const size_t literal_end = open == std::string::npos ? text.size() : open;
    std::string literal = text.substr(pos, literal_end - pos);
    const int literal_line = line;
    for (size_t i = pos; i < literal_end; ++i) line += text[i] == '\n';
    if (strip_next) {
      const size_t first = literal.find_first_not_of(" \t\r\n\f\v");
      literal.erase(0, first == std::string::npos ? literal.size() : first);
    }
    if (open == std::string::npos) {
      if (!literal.empty()) pieces.push_back({Piece::kText, literal, literal_line});
      break;
    }
    const char kind = text[open + 1];
    const bool strip_before = open + 2 < text.size() && text[open + 2] == '-';
    if (strip_before) {
      const size_t last = literal.find_last_not_of(" \t\r\n\f\v");
      literal.resize(last == std::string::npos ? 0 : last + 1);
    } else if (kind != '{') {
      const size_t newline = open == 0 ? std::string::npos : text.rfind('\n', open - 1);
      const size_t line_begin = newline == std::string::npos ? 0 : newline + 1;
      if (line_begin >= pos &&
          text.find_first_not_of(" \t", line_begin) >= open) {  // Only blanks before the tag.
        literal.resize(literal.size() - std::min(literal.size(), open - line_begin));
      }
    }
    if (!literal.empty()) pieces.push_back({Piece::kText, literal, literal_line});
    const char* close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    const size_t end = text.find(close, open + 2);
    if (end == std::string::npos) {
      return SyntaxError(source, line, absl::StrCat("unclosed ", text.substr(open, 2)));
    }
    const int tag_line = line;
    for (size_t i = open; i < end; ++i) line += text[i] == '\n';
    const size_t inner_begin = open + 2 + (strip_before ? 1 : 0);
    size_t inner_end = end;
    strip_next = inner_end > inner_begin && text[inner_end - 1] == '-';
    if (strip_next) --inner_end;
    pos = end + 2;
    if (kind != '{' && pos < text.size() && text[pos] == '\n') {  // trim_blocks.
      ++pos;
      ++line;
    }
    if (kind == '#') continue;
    std::string inner(
        absl::StripAsciiWhitespace(text.substr(inner_begin, inner_end - inner_begin)));
    pieces.push_back({kind == '{' ? Piece::kOutput : Piece::kStatement, inner, tag_line});
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// Expressions.

struct Token {
  enum Kind { kName, kInt, kFloat, kString, kOp, kEnd } kind;
  std::string text;
  int64_t i = 0;
  double f = 0;
};

absl::StatusOr<std::vector<Token>> Lex(absl::string_view s, absl::string_view source, int line) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() &&
             (absl::ascii_isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) {
        ++j;
      }
      tokens.push_back({Token::kName, std::string(s.substr(i, j - i))});
      i = j;
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < s.size() && (absl::ascii_isdigit(static_cast<unsigned char>(s[j])) ||
                              (s[j] == '.' && !is_float && j + 1 < s.size() &&
                               absl::ascii_isdigit(static_cast<unsigned char>(s[j + 1]))))) {
        is_float |= s[j] == '.';
        ++j;
      }
      Token t{is_float ? Token::kFloat : Token::kInt, std::string(s.substr(i, j - i))};
      if (is_float ? !absl::SimpleAtod(t.text, &t.f) : !absl::SimpleAtoi(t.text, &t.i)) {
        return SyntaxError(source, line, "number out of range");
      }
      tokens.push_back(t);
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string value;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          const char e = s[++j];
          value.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
        } else {
          value.push_back(s[j]);
        }
      }
      if (j >= s.size()) return SyntaxError(source, line, "unterminated string");
      tokens.push_back({Token::kString, value});
      i = j + 1;
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      std::string op(1, c);
      for (const char* t : two) {
        if (s.substr(i, 2) == t) op = t;
      }
      if (op.size() == 1 && !absl::StrContains("()[]{},.:|~+-*/%<>=", c)) {
        return SyntaxError(source, line, absl::StrCat("unexpected character ", ShownValue(op)));
      }
      tokens.push_back({Token::kOp, op});
      i += op.size();
    }
  }
  tokens.push_back({Token::kEnd, ""});
  return tokens;
}

struct Expr {
  enum Kind {
    kLiteral,
    kName,
    kAttr,
    kItem,
    kSlice,
    kCall,
    kFilter,
    kTest,
    kNot,
    kNeg,
    kBinary,
    kListLit,
    kDictLit,
    kTernary
  } kind;
  Value literal;
  std::string name;                               // Name, attribute, filter, test, binary operator.
  std::vector<std::shared_ptr<const Expr>> args;  // Operands; slices: obj, start, stop, step.
  std::vector<std::pair<std::string, std::shared_ptr<const Expr>>> kwargs;
  bool negated = false;  // `is not`.
  int line = 0;
};
using ExprPtr = std::shared_ptr<const Expr>;

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, absl::string_view source, int line)
      : tokens_(std::move(tokens)), source_(source), line_(line) {}

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  bool IsOp(absl::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::kOp && Peek(ahead).text == op;
  }
  bool IsName(absl::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::kName && Peek(ahead).text == name;
  }
  bool AtEnd() const { return Peek().kind == Token::kEnd; }
  absl::Status Error(absl::string_view what) const { return SyntaxError(source_, line_, what); }
  absl::Status Expect(absl::string_view op) {
    if (!IsOp(op)) return Error(absl::StrCat("expected '", op, "'"));
    ++pos_;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Name() {
    if (Peek().kind != Token::kName) return Error("expected a name");
    return tokens_[pos_++].text;
  }

  std::shared_ptr<Expr> New(Expr::Kind kind) {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    e->line = line_;
    return e;
  }

  absl::StatusOr<ExprPtr> Expression() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr value, Or());
    if (!IsName("if")) return value;
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(ExprPtr cond, Or());
    auto e = New(Expr::kTernary);
    e->args = {cond, value};
    if (IsName("else")) {
      ++pos_;
      STRATA_ASSIGN_OR_RETURN(ExprPtr other, Expression());
      e->args.push_back(other);
    }
    return ExprPtr(e);
  }

  absl::StatusOr<ExprPtr> Or() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, And());
    while (IsName("or")) {
      ++pos_;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, And());
      left = Binary("or", left, right);
    }
    return left;
  }
  absl::StatusOr<ExprPtr> And() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, Not());
    while (IsName("and")) {
      ++pos_;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, Not());
      left = Binary("and", left, right);
    }
    return left;
  }
  absl::StatusOr<ExprPtr> Not() {
    if (!IsName("not")) return Compare();
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(ExprPtr operand, Not());
    auto e = New(Expr::kNot);
    e->args = {operand};
    return ExprPtr(e);
  }
  absl::StatusOr<ExprPtr> Compare() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, Concat());
    while (true) {
      std::string op;
      if (Peek().kind == Token::kOp &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = tokens_[pos_++].text;
      } else if (IsName("in")) {
        ++pos_;
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        pos_ += 2;
        op = "not in";
      } else if (IsName("is")) {
        ++pos_;
        auto e = New(Expr::kTest);
        if (IsName("not")) {
          ++pos_;
          e->negated = true;
        }
        STRATA_ASSIGN_OR_RETURN(e->name, Name());
        e->args = {left};
        if (IsOp("(")) STRATA_RETURN_IF_ERROR(Arguments(e.get()));  // Refused when it runs.
        left = e;
        continue;
      } else {
        return left;
      }
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, Concat());
      left = Binary(op, left, right);
    }
  }
  absl::StatusOr<ExprPtr> Concat() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, Sum());
    while (IsOp("~")) {
      ++pos_;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, Sum());
      left = Binary("~", left, right);
    }
    return left;
  }
  absl::StatusOr<ExprPtr> Sum() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, Product());
    while (IsOp("+") || IsOp("-")) {
      const std::string op = tokens_[pos_++].text;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, Product());
      left = Binary(op, left, right);
    }
    return left;
  }
  absl::StatusOr<ExprPtr> Product() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, Unary());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = tokens_[pos_++].text;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, Unary());
      left = Binary(op, left, right);
    }
    return left;
  }
  absl::StatusOr<ExprPtr> Unary() {
    if (IsOp("-")) {
      ++pos_;
      STRATA_ASSIGN_OR_RETURN(ExprPtr operand, Unary());
      auto e = New(Expr::kNeg);
      e->args = {operand};
      return ExprPtr(e);
    }
    if (IsOp("**")) return Error("operator '**' is not supported");
    return Filtered();
  }
  // postfix, then `| filter(args)` chains (filters bind tighter than arithmetic).
  absl::StatusOr<ExprPtr> Filtered() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr value, Postfix());
    while (IsOp("|")) {
      ++pos_;
      auto e = New(Expr::kFilter);
      STRATA_ASSIGN_OR_RETURN(e->name, Name());
      e->args = {value};
      if (IsOp("(")) STRATA_RETURN_IF_ERROR(Arguments(e.get()));
      value = e;
    }
    return value;
  }
  absl::Status Arguments(Expr* call) {
    STRATA_RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      if (Peek().kind == Token::kName && IsOp("=", 1)) {
        const std::string key = tokens_[pos_].text;
        pos_ += 2;
        STRATA_ASSIGN_OR_RETURN(ExprPtr value, Expression());
        call->kwargs.emplace_back(key, value);
      } else {
        STRATA_ASSIGN_OR_RETURN(ExprPtr value, Expression());
        call->args.push_back(value);
      }
      if (!IsOp(",")) break;
      ++pos_;
    }
    return Expect(")");
  }
  absl::StatusOr<ExprPtr> Postfix() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr value, Primary());
    while (true) {
      if (IsOp(".")) {
        ++pos_;
        auto e = New(Expr::kAttr);
        STRATA_ASSIGN_OR_RETURN(e->name, Name());
        e->args = {value};
        value = e;
      } else if (IsOp("[")) {
        ++pos_;
        std::vector<ExprPtr> parts(3);
        int colons = 0;
        while (!IsOp("]")) {
          if (IsOp(":")) {
            if (++colons > 2) return Error("bad slice");
            ++pos_;
            continue;
          }
          STRATA_ASSIGN_OR_RETURN(parts[colons], Expression());
        }
        ++pos_;
        if (colons == 0) {
          if (parts[0] == nullptr) return Error("empty subscript");
          auto e = New(Expr::kItem);
          e->args = {value, parts[0]};
          value = e;
        } else {
          auto e = New(Expr::kSlice);
          e->args = {value, parts[0], parts[1], parts[2]};
          value = e;
        }
      } else if (IsOp("(")) {
        auto e = New(Expr::kCall);
        e->args = {value};
        STRATA_RETURN_IF_ERROR(Arguments(e.get()));
        value = e;
      } else {
        return value;
      }
    }
  }
  absl::StatusOr<ExprPtr> Primary() {
    const Token t = Peek();
    ++pos_;
    auto literal = [&](Value v) {
      auto e = New(Expr::kLiteral);
      e->literal = std::move(v);
      return ExprPtr(e);
    };
    switch (t.kind) {
      case Token::kInt:
        return literal(Value::Int(t.i));
      case Token::kFloat:
        return literal(Value::Float(t.f));
      case Token::kString: {
        std::string s = t.text;
        while (Peek().kind == Token::kString) s += tokens_[pos_++].text;  // Adjacent literals.
        return literal(Value::Str(s));
      }
      case Token::kName:
        if (t.text == "true" || t.text == "True") return literal(Value::Bool(true));
        if (t.text == "false" || t.text == "False") return literal(Value::Bool(false));
        if (t.text == "none" || t.text == "None") return literal(Value::None());
        {
          auto e = New(Expr::kName);
          e->name = t.text;
          return ExprPtr(e);
        }
      case Token::kOp:
        if (t.text == "(") {
          STRATA_ASSIGN_OR_RETURN(ExprPtr inner, Expression());
          STRATA_RETURN_IF_ERROR(Expect(")"));
          return inner;
        }
        if (t.text == "[") {
          auto e = New(Expr::kListLit);
          while (!IsOp("]")) {
            STRATA_ASSIGN_OR_RETURN(ExprPtr item, Expression());
            e->args.push_back(item);
            if (!IsOp(",")) break;
            ++pos_;
          }
          STRATA_RETURN_IF_ERROR(Expect("]"));
          return ExprPtr(e);
        }
        if (t.text == "{") {
          auto e = New(Expr::kDictLit);
          while (!IsOp("}")) {
            STRATA_ASSIGN_OR_RETURN(ExprPtr key, Expression());
            STRATA_RETURN_IF_ERROR(Expect(":"));
            STRATA_ASSIGN_OR_RETURN(ExprPtr value, Expression());
            e->args.push_back(key);
            e->args.push_back(value);
            if (!IsOp(",")) break;
            ++pos_;
          }
          STRATA_RETURN_IF_ERROR(Expect("}"));
          return ExprPtr(e);
        }
        return Error(absl::StrCat("unexpected '", t.text, "'"));
      case Token::kEnd:
        return Error("unexpected end of expression");
    }
    return Error("unexpected token");
  }

  size_t pos() const { return pos_; }

 private:
  ExprPtr Binary(const std::string& op, ExprPtr l, ExprPtr r) {
    auto e = New(Expr::kBinary);
    e->name = op;
    e->args = {std::move(l), std::move(r)};
    return e;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  std::string source_;
  int line_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Statements.

struct ChatTemplate::Node {
  enum Kind { kBlock, kText, kOutput, kIf, kFor, kSet } kind = kBlock;
  std::string text;
  ExprPtr expr;                                    // Output, For iterable, Set value.
  std::vector<std::string> names;                  // For targets; Set target (name[, attribute]).
  std::vector<std::pair<ExprPtr, Node>> branches;  // If: (condition, body); else has null.
  std::vector<Node> body;                          // Block, For body.
  std::vector<Node> else_body;                     // For's else.
  int line = 0;
};

namespace {

using Node = ChatTemplate::Node;

class StatementParser {
 public:
  StatementParser(std::vector<Piece> pieces, absl::string_view source)
      : pieces_(std::move(pieces)), source_(source) {}

  // Parses nodes until a statement whose first word is in `stops` (returned in *stop) or the end.
  absl::Status Block(std::vector<Node>* out, const std::vector<std::string>& stops,
                     std::string* stop, std::vector<Token>* stop_tokens) {
    while (pos_ < pieces_.size()) {
      const Piece& p = pieces_[pos_++];
      if (p.kind == Piece::kText) {
        Node n;
        n.kind = Node::kText;
        n.text = p.text;
        out->push_back(std::move(n));
        continue;
      }
      STRATA_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(p.text, source_, p.line));
      if (p.kind == Piece::kOutput) {
        Node n;
        n.kind = Node::kOutput;
        n.line = p.line;
        STRATA_ASSIGN_OR_RETURN(n.expr, WholeExpression(tokens, p.line, 0));
        out->push_back(std::move(n));
        continue;
      }
      if (tokens.empty() || tokens[0].kind != Token::kName) {
        return SyntaxError(source_, p.line, "a statement must start with a keyword");
      }
      const std::string word = tokens[0].text;
      for (const std::string& s : stops) {
        if (word == s) {
          *stop = word;
          *stop_tokens = std::move(tokens);
          return absl::OkStatus();
        }
      }
      if (word == "if") {
        STRATA_ASSIGN_OR_RETURN(Node n, If(tokens, p.line));
        out->push_back(std::move(n));
      } else if (word == "for") {
        STRATA_ASSIGN_OR_RETURN(Node n, For(tokens, p.line));
        out->push_back(std::move(n));
      } else if (word == "set") {
        STRATA_ASSIGN_OR_RETURN(Node n, Set(tokens, p.line));
        out->push_back(std::move(n));
      } else {
        return SyntaxError(source_, p.line,
                           absl::StrCat("statement ", ShownValue(word), " is not supported"));
      }
    }
    if (!stops.empty()) {
      return SyntaxError(source_, pieces_.empty() ? 1 : pieces_.back().line,
                         absl::StrCat("missing {% ", stops.back(), " %}"));
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<ExprPtr> WholeExpression(const std::vector<Token>& tokens, int line, size_t skip) {
    ExprParser parser(std::vector<Token>(tokens.begin() + skip, tokens.end()), source_, line);
    STRATA_ASSIGN_OR_RETURN(ExprPtr e, parser.Expression());
    if (!parser.AtEnd()) {
      return SyntaxError(
          source_, line,
          absl::StrCat("unexpected ", ShownValue(parser.Peek().text), " after an expression"));
    }
    return e;
  }

  absl::StatusOr<Node> If(const std::vector<Token>& tokens, int line) {
    Node n;
    n.kind = Node::kIf;
    n.line = line;
    STRATA_ASSIGN_OR_RETURN(ExprPtr cond, WholeExpression(tokens, line, 1));
    while (true) {
      Node body;
      std::string stop;
      std::vector<Token> stop_tokens;
      STRATA_RETURN_IF_ERROR(Block(&body.body, {"elif", "else", "endif"}, &stop, &stop_tokens));
      n.branches.emplace_back(cond, std::move(body));
      if (stop == "endif") return n;
      if (stop == "else") {
        cond = nullptr;
        Node else_body;
        STRATA_RETURN_IF_ERROR(Block(&else_body.body, {"endif"}, &stop, &stop_tokens));
        n.branches.emplace_back(nullptr, std::move(else_body));
        return n;
      }
      STRATA_ASSIGN_OR_RETURN(cond, WholeExpression(stop_tokens, pieces_[pos_ - 1].line, 1));
    }
  }

  absl::StatusOr<Node> For(const std::vector<Token>& tokens, int line) {
    Node n;
    n.kind = Node::kFor;
    n.line = line;
    size_t i = 1;
    while (i < tokens.size() && tokens[i].kind == Token::kName && tokens[i].text != "in") {
      n.names.push_back(tokens[i++].text);
      if (i < tokens.size() && tokens[i].kind == Token::kOp && tokens[i].text == ",") ++i;
    }
    if (n.names.empty() || n.names.size() > 2 || i >= tokens.size() || tokens[i].text != "in") {
      return SyntaxError(source_, line, "expected {% for name[, name] in ... %}");
    }
    ExprParser parser(std::vector<Token>(tokens.begin() + i + 1, tokens.end()), source_, line);
    STRATA_ASSIGN_OR_RETURN(n.expr, parser.Or());
    if (!parser.AtEnd()) {
      return SyntaxError(source_, line,
                         absl::StrCat("for loops with ", ShownValue(parser.Peek().text),
                                      " (filters, recursive) are not supported"));
    }
    std::string stop;
    std::vector<Token> stop_tokens;
    STRATA_RETURN_IF_ERROR(Block(&n.body, {"else", "endfor"}, &stop, &stop_tokens));
    if (stop == "else") {
      STRATA_RETURN_IF_ERROR(Block(&n.else_body, {"endfor"}, &stop, &stop_tokens));
    }
    return n;
  }

  absl::StatusOr<Node> Set(const std::vector<Token>& tokens, int line) {
    Node n;
    n.kind = Node::kSet;
    n.line = line;
    size_t i = 1;
    if (i < tokens.size() && tokens[i].kind == Token::kName) n.names.push_back(tokens[i++].text);
    if (i + 1 < tokens.size() && tokens[i].text == "." && tokens[i + 1].kind == Token::kName) {
      n.names.push_back(tokens[i + 1].text);
      i += 2;
    }
    if (n.names.empty() || i >= tokens.size() || tokens[i].text != "=") {
      return SyntaxError(source_, line,
                         "expected {% set name = ... %} or {% set ns.name = ... %} (set blocks "
                         "and tuple targets are not supported)");
    }
    STRATA_ASSIGN_OR_RETURN(n.expr, WholeExpression(tokens, line, i + 1));
    return n;
  }

  std::vector<Piece> pieces_;
  size_t pos_ = 0;
  std::string source_;
};

// ---------------------------------------------------------------------------------------------
// Rendering.

class Renderer {
 public:
  Renderer(absl::string_view source, std::map<std::string, Value> globals) : source_(source) {
    scopes_.push_back(std::move(globals));
  }

  absl::Status Run(const std::vector<Node>& nodes, std::string* out) {
    for (const Node& n : nodes) STRATA_RETURN_IF_ERROR(Run(n, out));
    return absl::OkStatus();
  }

  absl::Status Run(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::kBlock:
        return Run(n.body, out);
      case Node::kText:
        out->append(n.text);
        return absl::OkStatus();
      case Node::kOutput: {
        STRATA_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        out->append(ToText(v));
        return absl::OkStatus();
      }
      case Node::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = cond == nullptr;
          if (!take) {
            STRATA_ASSIGN_OR_RETURN(Value c, Eval(*cond));
            take = c.Truthy();
          }
          if (take) return Run(body.body, out);
        }
        return absl::OkStatus();
      case Node::kSet: {
        STRATA_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        if (n.names.size() == 1) {
          scopes_.back()[n.names[0]] = std::move(v);
          return absl::OkStatus();
        }
        const Value* ns = Lookup(n.names[0]);
        if (ns == nullptr || !ns->is_namespace) {
          return Error(n.line, absl::StrCat("{% set ", n.names[0], ".", n.names[1],
                                            " %} needs a namespace()"));
        }
        const_cast<Value*>(ns)->Set(n.names[1], std::move(v));
        return absl::OkStatus();
      }
      case Node::kFor:
        return For(n, out);
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", line, ": ", what));
  }

  const Value* Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return &found->second;
    }
    return nullptr;
  }

  absl::Status For(const Node& n, std::string* out) {
    STRATA_ASSIGN_OR_RETURN(Value iterable, Eval(*n.expr));
    List items;
    if (iterable.kind == Value::kList) {
      items = *iterable.list;
    } else if (iterable.kind == Value::kDict) {
      for (const auto& [k, v] : *iterable.dict) items.push_back(Value::Str(k));
    } else if (iterable.kind == Value::kString) {
      for (char c : iterable.s) items.push_back(Value::Str(std::string(1, c)));
    } else if (iterable.kind != Value::kUndefined && iterable.kind != Value::kNone) {
      return Error(n.line, absl::StrCat("cannot loop over a ", KindName(iterable.kind)));
    }
    if (items.empty()) return Run(n.else_body, out);
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      std::map<std::string, Value> scope;
      if (n.names.size() == 1) {
        scope[n.names[0]] = items[i];
      } else {
        if (items[i].kind != Value::kList || items[i].list->size() != 2) {
          return Error(n.line, "cannot unpack a loop item into two names");
        }
        scope[n.names[0]] = (*items[i].list)[0];
        scope[n.names[1]] = (*items[i].list)[1];
      }
      scope["loop"] = Value::NewDict({{"index", Value::Int(i + 1)},
                                      {"index0", Value::Int(i)},
                                      {"revindex", Value::Int(length - i)},
                                      {"revindex0", Value::Int(length - i - 1)},
                                      {"first", Value::Bool(i == 0)},
                                      {"last", Value::Bool(i == length - 1)},
                                      {"length", Value::Int(length)}});
      scopes_.push_back(std::move(scope));
      absl::Status s = Run(n.body, out);
      scopes_.pop_back();
      STRATA_RETURN_IF_ERROR(s);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::kLiteral:
        return e.literal;
      case Expr::kName: {
        const Value* v = Lookup(e.name);
        return v != nullptr ? *v : Value();
      }
      case Expr::kAttr: {
        STRATA_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        const Value* v = obj.Find(e.name);
        return v != nullptr ? *v : Value();
      }
      case Expr::kItem: {
        STRATA_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        STRATA_ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        return Item(obj, key, e.line);
      }
      case Expr::kSlice:
        return Slice(e);
      case Expr::kCall:
        return Call(e);
      case Expr::kFilter:
        return Filter(e);
      case Expr::kTest:
        return Test(e);
      case Expr::kNot: {
        STRATA_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        return Value::Bool(!v.Truthy());
      }
      case Expr::kNeg: {
        STRATA_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (v.kind == Value::kInt) return Value::Int(-v.i);
        if (v.kind == Value::kFloat) return Value::Float(-v.f);
        return Error(e.line, absl::StrCat("cannot negate a ", KindName(v.kind)));
      }
      case Expr::kBinary:
        return Binary(e);
      case Expr::kListLit: {
        Value v = Value::NewList();
        for (const ExprPtr& item : e.args) {
          STRATA_ASSIGN_OR_RETURN(Value x, Eval(*item));
          v.list->push_back(std::move(x));
        }
        return v;
      }
      case Expr::kDictLit: {
        Value v = Value::NewDict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          STRATA_ASSIGN_OR_RETURN(Value k, Eval(*e.args[i]));
          STRATA_ASSIGN_OR_RETURN(Value x, Eval(*e.args[i + 1]));
          if (k.kind != Value::kString) return Error(e.line, "dict keys must be strings");
          v.Set(k.s, std::move(x));
        }
        return v;
      }
      case Expr::kTernary: {
        STRATA_ASSIGN_OR_RETURN(Value c, Eval(*e.args[0]));
        if (c.Truthy()) return Eval(*e.args[1]);
        if (e.args.size() > 2) return Eval(*e.args[2]);
        return Value();
      }
    }
    return Value();
  }

  absl::StatusOr<Value> Item(const Value& obj, const Value& key, int line) {
    if (obj.kind == Value::kDict) {
      if (key.kind != Value::kString) return Value();
      const Value* v = obj.Find(key.s);
      return v != nullptr ? *v : Value();
    }
    if ((obj.kind == Value::kList || obj.kind == Value::kString) && key.kind == Value::kInt) {
      const int64_t size = obj.kind == Value::kList ? obj.list->size() : obj.s.size();
      const int64_t i = key.i < 0 ? key.i + size : key.i;
      if (i < 0 || i >= size) return Value();
      return obj.kind == Value::kList ? (*obj.list)[i] : Value::Str(std::string(1, obj.s[i]));
    }
    if (obj.kind == Value::kUndefined || obj.kind == Value::kNone) return Value();
    return Error(
        line, absl::StrCat("cannot index a ", KindName(obj.kind), " with a ", KindName(key.kind)));
  }

  absl::StatusOr<Value> Slice(const Expr& e) {
    STRATA_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
    std::optional<int64_t> bounds[3];
    for (int k = 0; k < 3; ++k) {
      if (e.args[k + 1] == nullptr) continue;
      STRATA_ASSIGN_OR_RETURN(Value v, Eval(*e.args[k + 1]));
      if (v.kind == Value::kNone) continue;
      if (v.kind != Value::kInt) return Error(e.line, "slice bounds must be integers");
      bounds[k] = v.i;
    }
    if (obj.kind != Value::kList && obj.kind != Value::kString) {
      return Error(e.line, absl::StrCat("cannot slice a ", KindName(obj.kind)));
    }
    const int64_t size = obj.kind == Value::kList ? obj.list->size() : obj.s.size();
    const int64_t step = bounds[2].value_or(1);
    if (step == 0) return Error(e.line, "slice step cannot be zero");
    auto clamp = [&](std::optional<int64_t> b, int64_t dflt) {
      if (!b.has_value()) return dflt;
      int64_t x = *b < 0 ? *b + size : *b;
      return step > 0 ? std::clamp<int64_t>(x, 0, size) : std::clamp<int64_t>(x, -1, size - 1);
    };
    const int64_t start = clamp(bounds[0], step > 0 ? 0 : size - 1);
    const int64_t stop = clamp(bounds[1], step > 0 ? size : -1);
    Value out = obj.kind == Value::kList ? Value::NewList() : Value::Str("");
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (obj.kind == Value::kList) {
        out.list->push_back((*obj.list)[i]);
      } else {
        out.s.push_back(obj.s[i]);
      }
    }
    return out;
  }

  absl::StatusOr<std::vector<Value>> Args(const Expr& e, size_t first) {
    std::vector<Value> args;
    for (size_t i = first; i < e.args.size(); ++i) {
      STRATA_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      args.push_back(std::move(v));
    }
    return args;
  }

  absl::StatusOr<Value> Call(const Expr& e) {
    const Expr& callee = *e.args[0];
    STRATA_ASSIGN_OR_RETURN(std::vector<Value> args, Args(e, 1));
    if (callee.kind == Expr::kName) {
      if (callee.name == "raise_exception") {
        return absl::InvalidArgumentError(absl::StrCat(
            source_, ":", e.line,
            ": the template raised an exception: ", args.empty() ? "" : ToText(args[0])));
      }
      if (callee.name == "namespace") {
        Value ns = Value::NewDict();
        ns.is_namespace = true;
        for (const auto& [k, v] : e.kwargs) {
          STRATA_ASSIGN_OR_RETURN(Value x, Eval(*v));
          ns.Set(k, std::move(x));
        }
        return ns;
      }
      if (callee.name == "range" && !args.empty() && args.size() <= 2) {
        int64_t lo = args.size() == 2 ? args[0].i : 0, hi = args.back().i;
        Value out = Value::NewList();
        for (int64_t i = lo; i < hi && i - lo < 1000000; ++i) out.list->push_back(Value::Int(i));
        return out;
      }
      return Error(e.line, absl::StrCat("function ", ShownValue(callee.name), " is not supported"));
    }
    if (callee.kind != Expr::kAttr)
      return Error(e.line, "only functions and methods can be called");
    if (!e.kwargs.empty()) return Error(e.line, "keyword arguments to methods are not supported");
    STRATA_ASSIGN_OR_RETURN(Value obj, Eval(*callee.args[0]));
    return Method(obj, callee.name, args, e.line);
  }

  absl::StatusOr<Value> Method(const Value& obj, const std::string& name,
                               const std::vector<Value>& args, int line) {
    auto arg_string = [&](size_t i) -> std::optional<std::string> {
      if (i < args.size() && args[i].kind == Value::kString) return args[i].s;
      return std::nullopt;
    };
    if (obj.kind == Value::kString) {
      const std::string& s = obj.s;
      if (name == "startswith" || name == "endswith") {
        auto prefix = arg_string(0);
        if (!prefix) return Error(line, absl::StrCat(name, "() needs a string"));
        return Value::Bool(name == "startswith" ? absl::StartsWith(s, *prefix)
                                                : absl::EndsWith(s, *prefix));
      }
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const std::string chars = arg_string(0).value_or(" \t\n\r\f\v");
        size_t begin = 0, end = s.size();
        if (name != "rstrip") {
          while (begin < end && chars.find(s[begin]) != std::string::npos) ++begin;
        }
        if (name != "lstrip") {
          while (end > begin && chars.find(s[end - 1]) != std::string::npos) --end;
        }
        return Value::Str(s.substr(begin, end - begin));
      }
      if (name == "split") {
        Value out = Value::NewList();
        auto sep = arg_string(0);
        if (sep.has_value() && !sep->empty()) {
          for (absl::string_view part : absl::StrSplit(s, *sep)) {
            out.list->push_back(Value::Str(std::string(part)));
          }
        } else {
          for (absl::string_view part :
               absl::StrSplit(s, absl::ByAnyChar(" \t\n\r\f\v"), absl::SkipEmpty())) {
            out.list->push_back(Value::Str(std::string(part)));
          }
        }
        return out;
      }
      if (name == "upper") return Value::Str(absl::AsciiStrToUpper(s));
      if (name == "lower") return Value::Str(absl::AsciiStrToLower(s));
      if (name == "title") {
        std::string t = s;
        bool start = true;
        for (char& c : t) {
          c = start ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
          start = !absl::ascii_isalpha(static_cast<unsigned char>(c));
        }
        return Value::Str(t);
      }
      if (name == "replace") {
        auto from = arg_string(0), to = arg_string(1);
        if (!from || !to || from->empty()) return Error(line, "replace() needs two strings");
        std::string r;
        size_t pos = 0;
        for (size_t hit; (hit = s.find(*from, pos)) != std::string::npos;
             pos = hit + from->size()) {
          r += s.substr(pos, hit - pos) + *to;
        }
        return Value::Str(r + s.substr(pos));
      }
    } else if (obj.kind == Value::kDict) {
      if (name == "items") {
        Value out = Value::NewList();
        for (const auto& [k, v] : *obj.dict) {
          out.list->push_back(Value::NewList({Value::Str(k), v}));
        }
        return out;
      }
      if (name == "keys" || name == "values") {
        Value out = Value::NewList();
        for (const auto& [k, v] : *obj.dict)
          out.list->push_back(name == "keys" ? Value::Str(k) : v);
        return out;
      }
      if (name == "get") {
        auto key = arg_string(0);
        const Value* v = key ? obj.Find(*key) : nullptr;
        if (v != nullptr) return *v;
        return args.size() > 1 ? args[1] : Value::None();
      }
    }
    return Error(line, absl::StrCat("method ", ShownValue(name), " of a ", KindName(obj.kind),
                                    " is not supported"));
  }

  absl::StatusOr<Value> Filter(const Expr& e) {
    STRATA_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
    STRATA_ASSIGN_OR_RETURN(std::vector<Value> args, Args(e, 1));
    const std::string& f = e.name;
    if (f == "trim") {
      return Value::Str(std::string(absl::StripAsciiWhitespace(ToText(v))));
    }
    if (f == "length" || f == "count") {
      if (v.kind == Value::kString) return Value::Int(v.s.size());
      if (v.kind == Value::kList) return Value::Int(v.list->size());
      if (v.kind == Value::kDict) return Value::Int(v.dict->size());
      return Error(e.line, absl::StrCat("a ", KindName(v.kind), " has no length"));
    }
    if (f == "tojson") {
      for (const auto& [k, unused] : e.kwargs) {
        return Error(e.line, absl::StrCat("tojson(", k, "=...) is not supported"));
      }
      return Value::Str(ToJson(v));
    }
    if (f == "string") return Value::Str(ToText(v));
    if (f == "upper" || f == "lower") {
      return Method(Value::Str(ToText(v)), f, {}, e.line);
    }
    if (f == "first" || f == "last") {
      if (v.kind == Value::kList && !v.list->empty()) {
        return f == "first" ? v.list->front() : v.list->back();
      }
      if (v.kind == Value::kString && !v.s.empty()) {
        return Value::Str(std::string(1, f == "first" ? v.s.front() : v.s.back()));
      }
      return Value();
    }
    if (f == "join") {
      if (v.kind != Value::kList) return Error(e.line, "join needs a list");
      std::vector<std::string> parts;
      for (const Value& x : *v.list) parts.push_back(ToText(x));
      return Value::Str(absl::StrJoin(parts, args.empty() ? "" : ToText(args[0])));
    }
    if (f == "default" || f == "d") {
      const bool use_default =
          args.size() > 1 && args[1].Truthy() ? !v.Truthy() : v.kind == Value::kUndefined;
      return use_default ? (args.empty() ? Value::Str("") : args[0]) : v;
    }
    if (f == "items") return Method(v, "items", {}, e.line);
    if (f == "list") {
      if (v.kind == Value::kList) return Value::NewList(*v.list);
      if (v.kind == Value::kString) {
        Value out = Value::NewList();
        for (char c : v.s) out.list->push_back(Value::Str(std::string(1, c)));
        return out;
      }
      return Error(e.line, absl::StrCat("cannot make a list of a ", KindName(v.kind)));
    }
    if (f == "reverse") {
      if (v.kind == Value::kList) return Value::NewList(List(v.list->rbegin(), v.list->rend()));
      if (v.kind == Value::kString) return Value::Str(std::string(v.s.rbegin(), v.s.rend()));
      return Error(e.line, absl::StrCat("cannot reverse a ", KindName(v.kind)));
    }
    return Error(e.line, absl::StrCat("filter ", ShownValue(f), " is not supported"));
  }

  absl::StatusOr<Value> Test(const Expr& e) {
    STRATA_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
    const std::string& t = e.name;
    bool r;
    if (t == "defined") {
      r = v.kind != Value::kUndefined;
    } else if (t == "undefined") {
      r = v.kind == Value::kUndefined;
    } else if (t == "none") {
      r = v.kind == Value::kNone;
    } else if (t == "string") {
      r = v.kind == Value::kString;
    } else if (t == "number") {
      r = v.kind == Value::kInt || v.kind == Value::kFloat;
    } else if (t == "mapping") {
      r = v.kind == Value::kDict;
    } else if (t == "sequence" || t == "iterable") {
      r = v.kind == Value::kList || v.kind == Value::kString || v.kind == Value::kDict;
    } else if (t == "boolean") {
      r = v.kind == Value::kBool;
    } else if (t == "true" || t == "false") {
      r = v.kind == Value::kBool && v.b == (t == "true");
    } else if (t == "even" || t == "odd") {
      if (v.kind != Value::kInt)
        return Error(e.line, absl::StrCat("'is ", t, "' needs an integer"));
      r = (v.i % 2 == 0) == (t == "even");
    } else {
      return Error(e.line, absl::StrCat("test ", ShownValue(t), " is not supported"));
    }
    return Value::Bool(r != e.negated);
  }

  absl::StatusOr<Value> Binary(const Expr& e) {
    const std::string& op = e.name;
    STRATA_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
    if (op == "and") return a.Truthy() ? Eval(*e.args[1]) : a;
    if (op == "or") return a.Truthy() ? a : Eval(*e.args[1]);
    STRATA_ASSIGN_OR_RETURN(Value b, Eval(*e.args[1]));
    if (op == "~") return Value::Str(ToText(a) + ToText(b));
    if (op == "==") return Value::Bool(Equal(a, b));
    if (op == "!=") return Value::Bool(!Equal(a, b));
    if (op == "in" || op == "not in") {
      bool found = false;
      if (b.kind == Value::kString && a.kind == Value::kString) {
        found = absl::StrContains(b.s, a.s);
      } else if (b.kind == Value::kList) {
        for (const Value& x : *b.list) found = found || Equal(a, x);
      } else if (b.kind == Value::kDict && a.kind == Value::kString) {
        found = b.Find(a.s) != nullptr;
      } else if (b.kind != Value::kUndefined && b.kind != Value::kNone) {
        return Error(e.line, absl::StrCat("'in' a ", KindName(b.kind), " is not supported"));
      }
      return Value::Bool(found == (op == "in"));
    }
    if (op == "+" && a.kind == Value::kString && b.kind == Value::kString) {
      return Value::Str(a.s + b.s);
    }
    if (op == "+" && a.kind == Value::kList && b.kind == Value::kList) {
      List items = *a.list;
      items.insert(items.end(), b.list->begin(), b.list->end());
      return Value::NewList(std::move(items));
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int cmp;
      if (a.IsNumber() && b.IsNumber()) {
        cmp = a.AsDouble() < b.AsDouble() ? -1 : a.AsDouble() > b.AsDouble() ? 1 : 0;
      } else if (a.kind == Value::kString && b.kind == Value::kString) {
        cmp = a.s.compare(b.s);
      } else {
        return Error(e.line, absl::StrCat("cannot compare a ", KindName(a.kind), " and a ",
                                          KindName(b.kind)));
      }
      return Value::Bool(op == "<"    ? cmp < 0
                         : op == ">"  ? cmp > 0
                         : op == "<=" ? cmp <= 0
                                      : cmp >= 0);
    }
    if (!a.IsNumber() || !b.IsNumber()) {
      return Error(e.line, absl::StrCat("operator '", op, "' on a ", KindName(a.kind), " and a ",
                                        KindName(b.kind), " is not supported"));
    }
    const bool ints = a.kind != Value::kFloat && b.kind != Value::kFloat;
    const int64_t ai = a.kind == Value::kBool ? a.b : a.i, bi = b.kind == Value::kBool ? b.b : b.i;
    if (op == "/" || ((op == "//" || op == "%") && ints && bi == 0)) {
      if (b.AsDouble() == 0) return Error(e.line, "division by zero");
      if (op == "/") return Value::Float(a.AsDouble() / b.AsDouble());
    }
    if (op == "+") return ints ? Value::Int(ai + bi) : Value::Float(a.AsDouble() + b.AsDouble());
    if (op == "-") return ints ? Value::Int(ai - bi) : Value::Float(a.AsDouble() - b.AsDouble());
    if (op == "*") return ints ? Value::Int(ai * bi) : Value::Float(a.AsDouble() * b.AsDouble());
    if (op == "//" && ints) {
      int64_t q = ai / bi;
      if ((ai % bi != 0) && ((ai < 0) != (bi < 0))) --q;
      return Value::Int(q);
    }
    if (op == "%" && ints) {
      int64_t m = ai % bi;
      if (m != 0 && ((m < 0) != (bi < 0))) m += bi;
      return Value::Int(m);
    }
    return Error(e.line, absl::StrCat("operator '", op, "' on floats is not supported"));
  }

  std::string source_;
  std::vector<std::map<std::string, Value>> scopes_;
};

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(absl::string_view text, absl::string_view source) {
  STRATA_ASSIGN_OR_RETURN(std::vector<Piece> pieces, Cut(std::string(text), source));
  StatementParser parser(std::move(pieces), source);
  auto root = std::make_shared<Node>();
  std::string stop;
  std::vector<Token> stop_tokens;
  STRATA_RETURN_IF_ERROR(parser.Block(&root->body, {}, &stop, &stop_tokens));
  ChatTemplate t;
  t.root_ = std::move(root);
  t.source_ = std::string(source);
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const ChatTemplateInputs& inputs) const {
  if (!inputs.extra.is_null() && !inputs.extra.is_object()) {
    return absl::InvalidArgumentError("chat template variables must be a JSON object");
  }
  std::map<std::string, Value> globals;
  for (auto it = inputs.extra.begin(); !inputs.extra.is_null() && it != inputs.extra.end(); ++it) {
    globals[it.key()] = FromJson(*it);
  }
  Value messages = Value::NewList();
  for (const ChatMessage& m : inputs.messages) {
    messages.list->push_back(
        Value::NewDict({{"role", Value::Str(m.role)}, {"content", Value::Str(m.content)}}));
  }
  globals["messages"] = messages;
  globals["add_generation_prompt"] = Value::Bool(inputs.add_generation_prompt);
  globals["bos_token"] = Value::Str(inputs.bos_token);
  globals["eos_token"] = Value::Str(inputs.eos_token);
  Renderer renderer(source_, std::move(globals));
  std::string out;
  STRATA_RETURN_IF_ERROR(renderer.Run(*root_, &out));
  return out;
}

}  // namespace strata
