// Chat template engine details: whitespace control, loops, namespaces, slices, string methods,
// raise_exception, and constructs that are not implemented refused by name and line.
#include "runtime/data/chat_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::string> Render(const std::string& text, ChatTemplateInputs inputs = {}) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(text, "t.jinja");
  if (!t.ok()) return t.status();
  return t->Render(inputs);
}

TEST(ChatTemplateTest, LoopsNamespacesAndWhitespace) {
  ChatTemplateInputs in;
  in.messages = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}};
  in.add_generation_prompt = true;
  EXPECT_EQ(*Render("{% for m in messages %}{{ loop.index0 }}{{ m.role[0] }}"
                    "{% if loop.first %}F{% elif loop.last %}L{% else %}-{% endif %}"
                    "{% endfor %}",
                    in),
            "0uF1a-2uL");
  EXPECT_EQ(*Render("{%- set ns = namespace(n=0) %}\n"
                    "{%- for m in messages[::-1] %}\n"
                    "  {%- if m.role == 'user' %}{% set ns.n = ns.n + 1 %}{% endif %}\n"
                    "{%- endfor %}\n"
                    "{{- ns.n ~ '|' ~ messages|length }}\n",
                    in),
            "2|3");
  // trim_blocks and lstrip_blocks: block lines leave no blank lines behind.
  EXPECT_EQ(*Render("{% if add_generation_prompt %}\n    yes\n    {% endif %}\nend\n", in),
            "    yes\nend");
  EXPECT_EQ(*Render("{{ 'x' if messages|length > 5 else 'y' }}{{ 7 // 2 }}{{ -7 % 3 }}", in),
            "y32");
}

TEST(ChatTemplateTest, StringMethodsAndFilters) {
  EXPECT_EQ(*Render("{{ ' a<b>c '.strip().split('<b>')[-1] }}{{ 'xxhixx'.strip('x') }}"
                    "{{ 'Ab'.startswith('A') }}{{ '  t  ' | trim }}{{ {'k': [1, 'é']} | tojson }}"),
            "chiTruet{\"k\": [1, \"é\"]}");
  EXPECT_EQ(*Render("{{ x is defined }}{{ none is none }}{{ 'a' in 'cat' }}{{ 3 is not string }}"),
            "FalseTrueTrueTrue");
}

TEST(ChatTemplateTest, RefusesWhatIsNotImplementedByNameAndLine) {
  EXPECT_THAT(Render("ok\n{% macro m() %}{% endmacro %}").status().message(),
              HasSubstr("t.jinja:2: statement \"macro\" is not supported"));
  EXPECT_THAT(Render("{{ 'a' | wordcount }}").status().message(),
              HasSubstr("filter \"wordcount\" is not supported"));
  EXPECT_THAT(Render("{{ 1 is divisibleby(2) }}").status().message(), HasSubstr("divisibleby"));
  EXPECT_THAT(Render("{{ 'a'.zfill(3) }}").status().message(),
              HasSubstr("method \"zfill\" of a string"));
  EXPECT_THAT(Render("{{ cycler() }}").status().message(), HasSubstr("function \"cycler\""));
  EXPECT_THAT(Render("{% if x %}").status().message(), HasSubstr("missing {% endif %}"));
  EXPECT_THAT(Render("{{ x").status().message(), HasSubstr("unclosed {{"));
  EXPECT_THAT(Render("{{ raise_exception('Only user and assistant roles') }}").status().message(),
              HasSubstr("raised an exception: Only user and assistant roles"));
}

}  // namespace
}  // namespace strata
