#!/usr/bin/env python3
"""make_corpus.py - the tokenizer test corpus (tests/tokenizer/corpus.jsonl).

Deterministic: a fixed seed and Python's `random.Random` (stable across
Python 3 versions for the calls used here). Random code points are drawn
only from characters assigned in the Unicode data of the running Python
(3.11: Unicode 14.0), so that no text depends on characters whose
letter/number status differs between Unicode versions (transformers.js on
Node 20 uses Unicode 17, utf8proc 2.8 Unicode 15.0, HF tokenizers'
Oniguruma its own version; see docs/tokenizer.md). With a Python of another
Unicode version the random picks differ: regenerate the goldens then.

Output: one JSON object per line, {"text": "..."}; a text that contains
U+0000 also carries "hex" (its UTF-8 bytes), because C JSON libraries stop
strings at NUL. Line i is corpus entry i (0-based) in goldens.jsonl.gz.

Usage: python3 make_corpus.py > corpus.jsonl
"""
import json
import random
import sys
import unicodedata

SEED = 20250601
rng = random.Random(SEED)
out = []


def add(text):
    out.append(text)


def assigned(cp):
    if 0xD800 <= cp <= 0xDFFF:
        return False
    return unicodedata.category(chr(cp)) != "Cn"


def block_chars(lo, hi, cats=None):
    cs = []
    for cp in range(lo, hi + 1):
        if not assigned(cp):
            continue
        if cats and unicodedata.category(chr(cp))[0] not in cats and unicodedata.category(chr(cp)) not in cats:
            continue
        cs.append(chr(cp))
    return cs


# --------------------------------------------------------------- natural text
NATURAL = [
    # Latin with diacritics
    "The quick brown fox jumps over the lazy dog.",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    "Größenmaßstäbe: Straße, Fuß, Maß; STRASSE vs. STRAẞE.",
    "Portez ce vieux whisky au juge blond qui fume. L'été où l'œil s'ouvre à l'aïeul Noël.",
    "Él pidió un café: ¿dónde está el niño? ¡Qué güey! Año, señor, pingüino.",
    "Tiếng Việt có dấu: Người ta nói rằng mỗi ngày đều là một món quà. Đặng Thị Ngọc Hương.",
    "Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy. Šťastný Ťažký.",
    "Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul'da ıslak ılık İĞNE.",
    "Kæmi ný öxi hér, ykist þjófum nú bæði víl og ádrepa. Þórður Ðóra.",
    "Árvíztűrő tükörfúrógép. Őrült Űr.",
    "Ça coûte 3,50 € — naïve façade, cœur, Æsop, Ørsted, Åsa, ﬁnancial ﬂow.",
    "Lietuvių kalba: ąčęėįšųūž. Latviešu: āčēģīķļņšūž. Eesti: õäöü.",
    "Română: ș ț ă î â (și cu sedilă: ş ţ). Malti: ċ ġ ħ ż.",
    "Yorùbá: Ẹ kú àárọ̀. Igbo: Ọ̀ dị̀ mma. Hausa: ƙ ɗ ɓ ƴ.",
    "Pinyin: Zhōngwén pīnyīn, nǚ lǜ lüè, ǖ ǘ ǚ ǜ.",
    "IPA: [ðə ˈkwɪk ˈbɹaʊn ˈfɒks] ʃ ʒ ŋ ɲ ʔ ʕ ɬ ɮ ʘ ǀ ǁ ǂ ǃ.",
    # Greek
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο.",
    "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν. ᾯ ᾧ ῷ ῥ.",
    "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ αβγδεζηθικλμνξοπρστυφχψω ς ϐ ϑ ϕ ϖ.",
    # Cyrillic
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів! Ї ї Є є Ґ ґ.",
    "Љубазни фењерџија чађавог лица хоће да ми покаже штос. Ђ ђ Ћ ћ Џ џ.",
    "Жълтата дюля беше щастлива, че пухът, който цъфна, замръзна като гьон.",
    "Қазақ тілі: әғқңөұүһі. Тоҷикӣ: ғӣқӯҳҷ. Монгол: өү.",
    # Armenian, Georgian
    "Բարեւ Ձեզ: Հայերենը հնդեվրոպական լեզու է։ ՈՒ ու և ﬓ ﬔ.",
    "ქართული ენა — ვეფხისტყაოსანი, შოთა რუსთაველი. Ⴀ Ⴁ ᲐᲑᲒ.",
    # Hebrew (with niqqud), Arabic, Persian, Urdu (with RTL marks)
    "שָׁלוֹם עֲלֵיכֶם! עִבְרִית הִיא שָׂפָה שֵׁמִית. ‏(מילה)‏ ﬠ ﬡ.",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה.",
    "اللُّغَةُ العَرَبِيَّةُ جَمِيلَةٌ. نصٌّ عربيّ مع تشكيل وتطويـــــل.",
    "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت يَحظى الضَجيعُ بِها نَجلاءَ مِعطارِ",
    "\u200fالسلام عليكم\u200f \u200eABC\u200e \u061cمرحبا\u061c ﷺ ﷲ ﻻ",
    "فارسی: گچپژ، این یک متن آزمایشی است. ی ک ۀ",
    "اردو: ٹھیک ہے، یہ ایک جملہ ہے۔ ڈ ڑ ں ے",
    "ܫܠܡܐ ܥܠܝܟܘܢ (Syriac) ދިވެހި (Thaana) ߒߞߏ (N'Ko)",
    # Indic
    "हिन्दी भारत की राजभाषा है। क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़ — नमस्ते दुनिया!",
    "मराठी: महाराष्ट्र; नेपाली: नेपाल; संस्कृतम्: ॐ नमः शिवाय॥",
    "বাংলা ভাষা: আমার সোনার বাংলা, আমি তোমায় ভালোবাসি। ৎ ড় ঢ় য়",
    "தமிழ் மொழி: யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம். ொ ோ ௌ",
    "తెలుగు: దేశ భాషలందు తెలుగు లెస్స. కన్నడ: ಕನ್ನಡ ನಾಡು. മലയാളം: മലയാള ഭാഷ ൽ ൾ ൺ.",
    "ગુજરાતી ભાષા. ਪੰਜਾਬੀ ਭਾਸ਼ਾ ਗੁਰਮੁਖੀ. ଓଡ଼ିଆ ଭାଷା. සිංහල භාෂාව ශ්‍රී ලංකා.",
    # Southeast Asian
    "ภาษาไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "ພາສາລາວ: ສະບາຍດີ ປະເທດລາວ ໆ ຯ",
    "ភាសាខ្មែរ: សួស្តី ពិភពលោក ៗ ៘",
    "မြန်မာဘာသာ: မင်္ဂလာပါ ကမ္ဘာ ၊ ။",
    "ᜆᜄᜎᜓᜄ᜔ (Tagalog Baybayin) ᨅᨔ ᨕᨘᨁᨗ (Buginese) ꦧꦱꦗꦮ (Javanese) ᬅᬓ᭄ᬱᬭ (Balinese)",
    # Tibetan, Mongolian, others
    "བོད་སྐད། བཀྲ་ཤིས་བདེ་ལེགས། ༄༅། །",
    "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ᠌ ᠤᠨ ᠠ᠋ ᠡ᠎ᠡ ᠨᠠ᠍ (Mongolian with FVS/MVS)",
    "ኢትዮጵያ: ሰላም ለዓለም። አማርኛ ቋንቋ ፩ ፪ ፫",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ (Cherokee) ꮳꮃꭹ ᐃᓄᒃᑎᑐᑦ (Inuktitut) ⵜⴰⵎⴰⵣⵉⵖⵜ (Tifinagh)",
    "ꕙꔤ (Vai) ᚠᚢᚦᚨᚱᚲ (Runic) ᚛ᚑᚌᚐᚋ᚜ (Ogham) 𐌰𐌱𐌲 (Gothic) 𐐀𐐨 (Deseret)",
    "ꆈꌠꁱꂷ (Yi) ᨀᨁᨂ (Buginese) ᥐᥑ (Tai Le) ᦀᦁ (New Tai Lue) ꪀꪁ (Tai Viet)",
    # CJK
    "中文：我能吞下玻璃而不伤身体。繁體中文：我能吞下玻璃而不傷身體。",
    "向量数据库存储嵌入向量，用于语义检索（RAG）。",
    "日本語：私はガラスを食べられます。それは私を傷つけません。ｶﾀｶﾅ ﾊﾝｶｸ",
    "ひらがな カタカナ 漢字 ゟ ヿ ㋿ 〼 々 〆 ヶ",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. ㄱㄴㄷ ㅏㅑ",
    "훈민정음 ᄒᆞᆫ글 옛한글 ᄀᆞᄅᆞᆷ",
    "𠀀𠀁𠀂 𪚥 𩸽 𠮷野家 (CJK Extension B)",
    "ㄅㄆㄇㄈ 注音符號 ⿰氵工 〇一二三",
    # Math, symbols
    "𝐀𝐁𝐂 𝑎𝑏𝑐 𝔄𝔅 𝕬 𝒜 𝓐 𝖆 𝗔 𝘈 𝙰 𝚨 𝛂 𝟎𝟏𝟐 ℝ ℕ ℤ ℚ ℂ ℵ ℶ",
    "∀x∈ℝ: x²≥0; ∑_{i=1}^{n} i = n(n+1)/2; ∫₀^∞ e^{-x²} dx = √π/2 ≠ ∞ ≤ ≥ ± ∓ × ÷",
    "©®™℠ §¶†‡•… ‰‱ ′″‴ ‹›«» „“”‚‘’ ¡¿ ‽ ⁂ ※ № ℃ ℉ Ω Å K ℮",
    "♠♣♥♦ ♩♪♫♬ ☀☁☂☃ ★☆ ✓✔✗✘ ←↑→↓ ⇐⇒⇔ ⌘⌥⇧ ␣ ⏎ ⎋",
    "𝄞 𝄢 𝅘𝅥𝅮 (musical) 𓀀𓀁 (hieroglyphs) 𒀀𒀁 (cuneiform) 𐀀𐀁 (Linear B) 𖿠 𗀀𗀁 (Tangut)",
]
for t in NATURAL:
    add(t)

# ------------------------------------------------------------------ emoji
EMOJI = [
    "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇",
    "👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿",
    "👨‍👩‍👧‍👦 👩‍❤️‍💋‍👨 🧑‍🤝‍🧑 👨🏽‍💻 🏳️‍🌈 🏴‍☠️ 🐻‍❄️ ❤️‍🔥",
    "🇩🇪🇫🇷🇯🇵🇺🇸🇬🇧🇨🇳 🇪🇺 🇺🇳",
    "🏴󠁧󠁢󠁥󠁮󠁧󠁿 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏴󠁧󠁢󠁷󠁬󠁳󠁿",
    "1️⃣ 2️⃣ #️⃣ *️⃣ 0️⃣ 🔟",
    "☺ ☺️ ☺︎ ❤ ❤️ ❤︎ ✌ ✌️ ✌🏿 ⚠️ ℹ️ ™️ ↔️",
    "I ❤️ NY! Great job 👏👏👏 lol 😂😂😂",
    "🫠🫡🫢🫣🫤🥹 🪸🪷🪹🪺 🛝🛞🛟",
    "🧔‍♀️ 🧔🏻‍♂️ 👩🏾‍🦰 👨‍🦳 🧑‍🎄 🏃‍♀️‍➡️",
    "text😀text 😀,😀. (😀) \"😀\" 'x😀'",
    "🤷‍♂️🤦🏼‍♀️🙋🏿‍♂️💁‍♀️",
]
for t in EMOJI:
    add(t)

# --------------------------------------------------- combining marks & NFC
NFC = [
    "e\u0301 E\u0301 a\u0300 o\u0308 n\u0303 c\u0327 u\u030a",
    "Cafe\u0301 na\u0131\u0308ve re\u0301sume\u0301",
    "a\u0323\u0302 a\u0302\u0323 (reordered by NFC) o\u031b\u0301 u\u031b\u0309",
    "Vie\u0302\u0323t Nam: Tie\u0302\u0301ng Vie\u0323\u0302t",
    "q\u0307\u0323 s\u0323\u0307 x\u0304\u0301\u0300",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u0357\u0345l\u0316g\u0313o\u0332 text",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af (conjoining jamo)",
    "\u1100\u1161 \u110b\u1175 \u1109\u116e \u1100\u1161\u11a8\u11a8",
    "\uac00\u11a8 (LV syllable + T jamo) \uac01\u11a8",
    "\u1100\u1161<|endoftext|>\u11a8",
    "<|im_end|>\u0301 \u0301 start-of-segment mark",
    "\u0301\u0302\u0303 marks only",
    "\u2126 \u212b \u212a \u0387 \u037e \u1fef \u2000 \u2001",
    "\uf900\uf901\uf902 \ufa10 \U0002f800 CJK compatibility",
    "\u0958\u0959 \u0915\u093c \u09dc \u0a33 \u0b5c (composition exclusions)",
    "\u0b47\u0b3e \u0b47\u0b57 \u0bc6\u0bbe \u0bc6\u0bd7 \u0d46\u0d3e \u0dd9\u0dcf\u0dca (two-part vowels)",
    "\u1025\u102e \u1b05\u1b35 \u0cbf\u0cd5 \u0cc6\u0cd5\u0cc2",
    "\U00011935\U00011930 (Dives Akuru) \U00011099\U000110ba (Kaithi)",
    "\u0344 \u0340 \u0341 \u0343 \u0374 (singletons)",
    "A\u030a\u0301 \u00c5\u0301 \u212b\u0301",
    "\u05e9\u05c1\u05b8 \u05e9\u05b8\u05c1 (Hebrew mark order)",
    "\u0627\u0653 \u0627\u0654 \u0648\u0654 \u064a\u0654 \u06d5\u0654",
    "\u3046\u3099 \u30cf\u309a \u304b\u3099\u3099 (kana voicing)",
    "\u00e9\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301",
    "i\u0307 I\u0307 \u0130 \u0131 \u0069\u0308\u0301",
    "\u1e9b\u0323 \u017f\u0323\u0307 \u1e69",
]
for t in NFC:
    add(t)

# -------------------------------------------------------- Unicode versions
# Letters and digits of Unicode 15.0-17.0 and marks added after Unicode 9.0:
# where utf8proc (15.0), transformers.js (17.0) and HF tokenizers (regex 16.0,
# NFC 9.0) can disagree (docs/tokenizer.md, "Unicode versions").
UNI = [
    ("15.0 Kawi", "\U00011f04\U00011f05\U00011f06"), ("15.0 Nag Mundari", "\U0001e4d0\U0001e4d1"),
    ("15.0 CJK Ext H", "\U00031350\U00031351\U00031352"), ("15.0 Kaktovik digits", "\U0001d2c0\U0001d2c1"),
    ("15.1 CJK Ext I", "\U0002ebf0\U0002ebf1\U0002ebf2"), ("16.0 Todhri", "\U000105c0\U000105c1"),
    ("16.0 Garay", "\U00010d4a\U00010d4b\U00010d40\U00010d41"), ("16.0 Egyptian Ext-A", "\U00013460\U00013461"),
    ("16.0 Kirat Rai", "\U00016d43\U00016d44\U00016d70\U00016d71"), ("16.0 Sunuwar digits", "\U00011bf0\U00011bf1"),
    ("16.0 Latin", "\ua7cb\ua7cc\ua7dc\u1c89\u1c8a"),
    ("17.0 CJK Ext J", "\U000323b0\U000323b1"), ("17.0 Tai Yo", "\U0001e6c0\U0001e6c1"),
    ("17.0 Sidetic", "\U00010940\U00010941"), ("17.0 Beria Erfe", "\U00016ea0\U00016ea1"),
]
for name, u in UNI:
    add(u)
    add("a" + u + "b " + name)
    add(" " + u + " 1" + u + "2 '" + u + "s")
    add("!" + u + "?" + u + u + "\n")
MARKS = [
    "a\u1dfa\u0301", "a\u0301\u1dfa", "q\u0c3c\u0334", "\u0c15\u0c3c\u0c4d", "e\u1abf\u0300",
    "\u0d15\u0d3b\u0d4d", "o\u08ca\u0323", "\U00011935\U00011930", "x\U00011935\U00011930y",
    "\U00016d63\U00016d67", "\U00016d67\U00016d67", "\U0001611e\U0001611f", "\U000113c2\U000113b8",
    "\U000105d2\u0307", "a\U00016ff0\u0301", "\U00010d24\u0301a", "Tie\u0302\u1dfa\u0301ng",
    "\u0915\u093c\u0c3c\u0334\u0301",
]
for m in MARKS:
    add(m)
    add("word " + m + " word" + m)

# --------------------------------------------------------------------- code
CODE = [
    '#include <stdio.h>\nint main(void) {\n    printf("hello, world\\n");\n    return 0;\n}\n',
    "static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }",
    "for (size_t i = 0; i < n; ++i) {\r\n\tsum += a[i] * b[i]; // dot\r\n}\r\n",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])\n",
    "class Foo(Bar):\n    '''Docstring with 'quotes' and \"double\".'''\n    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n",
    '{"name": "embedq", "version": "0.1.0", "tags": ["a", "b"], "n": -1.5e-3, "ok": true, "x": null}',
    '[{"id":1,"text":"hi"},{"id":2,"text":"\\u00e9\\n"}]',
    '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Test &amp; &lt;page&gt;</title></head>\n<body><p class="x">Hello&nbsp;world</p></body>\n</html>',
    "<div><span>nested</span></div><br/><img src='a.png' alt=\"\"/>",
    r"^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+$",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "SELECT u.id, COUNT(*) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at >= '2024-01-01' GROUP BY u.id HAVING n > 3;",
    "const f = async (x) => { await sleep(10); return x?.y ?? `tmpl ${x}`; };",
    'fn main() { let v: Vec<u8> = b"bytes".to_vec(); println!("{:?}", v); }',
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\" | tr 'a-z' 'A-Z'; done 2>&1 | tee log\n",
    "\\begin{equation}\n  E = mc^2 \\quad \\text{and} \\quad \\frac{\\partial u}{\\partial t} = \\alpha \\nabla^2 u\n\\end{equation}",
    "# Title\n\n- item *one*\n- item **two**\n\n```python\nx = 1\n```\n\n> quote\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    "--- a/file.c\n+++ b/file.c\n@@ -1,3 +1,4 @@\n-old line\n+new line\n+another\n context\n",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b&=6;c|=7;d^=8;e<<=9;f>>=10;g>>>=11;h**=2;i//=3;",
    "if(a&&b||!c){x=a?b:c;}else{y=~d;}while(i-->0);do{}while(0);",
    "    \n\t\t\n        indented\n\t\tmixed\t \n",
    "key1=value1\nkey2 = value 2\n[section]\n; comment\n# comment\n",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><root xmlns:x=\"urn:x\"><x:a b=\"1\"/></root>",
    "\"\"\"\n''' \"\" '' \\\" \\' `` ``` ''''' \"\"\"\"\"",
    "0x1F 0b1010 0o777 1_000_000 3.14159f 6.022e23 -0.0 1e-9 0xDEADBEEF",
    "#define MAX(a,b) ((a)>(b)?(a):(b))\n#pragma once\n#if defined(__GNUC__) && __GNUC__ >= 4\n#endif",
]
for t in CODE:
    add(t)

# ------------------------------------------------------- URLs, emails, paths
URLS = [
    "https://example.com/path/to/page?query=1&x=%E2%82%AC#frag",
    "http://user:pass@[2001:db8::1]:8080/a/b;c?d=e",
    "ftp://ftp.example.org/pub/file-1.2.3.tar.gz",
    "mailto:first.last+tag@sub.example.co.uk",
    "Contact: jane_doe-99@例え.テスト or bob@müller.de",
    "C:\\Users\\Public\\Documents\\report (final) v2.docx",
    "/usr/local/lib/python3.11/site-packages/numpy/__init__.py",
    "~/.config/nvim/init.lua ../relative/./path//double",
    "https://ja.wikipedia.org/wiki/日本語 https://ru.wikipedia.org/wiki/Русский_язык",
    "s3://bucket-name/prefix/2024/01/01/part-00000.snappy.parquet",
    "git@github.com:owner/repo.git ssh://git@host:22/repo",
    "192.168.0.1 10.0.0.255:443 ::1 fe80::1%eth0",
    "www.example.com/index.html?utm_source=newsletter&utm_medium=email",
    "file:///C:/Windows/System32/drivers/etc/hosts",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
]
for t in URLS:
    add(t)

# ------------------------------------------------------------------ numbers
DIGIT_SETS = [
    "0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯",
    "੦੧੨੩੪੫੬੭੮੯", "૦૧૨૩૪૫૬૭૮૯", "୦୧୨୩୪୫୬୭୮୯", "௦௧௨௩௪௫௬௭௮௯", "౦౧౨౩౪౫౬౭౮౯",
    "೦೧೨೩೪೫೬೭೮೯", "൦൧൨൩൪൫൬൭൮൯", "๐๑๒๓๔๕๖๗๘๙", "໐໑໒໓໔໕໖໗໘໙", "༠༡༢༣༤༥༦༧༨༩",
    "၀၁၂၃၄၅၆၇၈၉", "០១២៣៤៥៦៧៨៩", "᠐᠑᠒᠓᠔᠕᠖᠗᠘᠙", "０１２３４５６７８９", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",
    "𝟘𝟙𝟚𝟛𝟜𝟝𝟞𝟟𝟠𝟡", "߀߁߂߃߄߅߆߇߈߉", "᥆᥇᥈᥉᥊᥋᥌᥍᥎᥏", "꘠꘡꘢꘣꘤꘥꘦꘧꘨꘩", "𑁦𑁧𑁨𑁩𑁪𑁫𑁬𑁭𑁮𑁯",
]
for ds in DIGIT_SETS:
    add(ds)
    add(" ".join(ds) + " " + ds[::-1] + ds[1] + ds[0] + ds[0] + "," + ds[5] + ds[0] + ds[0])
NUMBERS = [
    "¹²³⁴⁵⁶⁷⁸⁹⁰ ₀₁₂₃₄₅₆₇₈₉ x² y³ H₂O CO₂ 10⁻⁹",
    "Ⅰ Ⅱ Ⅲ Ⅳ Ⅴ Ⅵ Ⅶ Ⅷ Ⅸ Ⅹ Ⅺ Ⅻ Ⅼ Ⅽ Ⅾ Ⅿ ⅰ ⅱ ⅲ ⅳ ⅴ ⅿ ↀ ↁ ↂ Ↄ",
    "½ ⅓ ⅔ ¼ ¾ ⅕ ⅖ ⅗ ⅘ ⅙ ⅚ ⅐ ⅛ ⅜ ⅝ ⅞ ⅑ ⅒ ↉ 1⁄2",
    "① ② ③ ⑩ ⑳ ㉑ ㊿ ⑴ ⒈ ⓵ ❶ ➀ 🄀 🄁",
    "〇 一 二 三 四 五 六 七 八 九 十 百 千 万 亿 壹 贰 叁 〡〢〣 〸〹〺",
    "𐄇𐄈𐄉 (Aegean) 𝍠𝍡𝍢 (counting rods) 𐌠𐌡 (Old Italic) ፲ ፳ ፻ 𑇡𑇢",
    "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899",
    "1,234,567.89 1.234.567,89 1 234 567,89 1'234'567.89 12,34,567.89",
    "-42 +42 ±0.5 −3 (U+2212) 1e10 1E-10 0.000001 .5 5. 007",
    "2024-01-31T23:59:59.999Z 31/12/1999 12:30:45 UTC+05:30 v1.2.3-rc.1+build.5",
    "$100 €99.99 £50 ¥1000 ₹500 ₩10000 ₿0.001 ¢25 ₽ ₺ ₴ ₦",
    "١٢٣٫٤٥ ٪٥٠ ٢٠٢٤/٠١/٠١",
    "Phone: +1 (555) 123-4567 ext. 89; ISBN 978-3-16-148410-0",
]
for t in NUMBERS:
    add(t)

# ------------------------------------------------------------ contractions
CONTRACTIONS = [
    "it's IT'S It'S iT's don't DON'T Don'T they're THEY'RE They'Re theY'rE",
    "we've WE'VE We'Ve wE'vE I'm I'M i'm you'll YOU'LL You'Ll yOu'lL he'd HE'D He'D",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D 'Re 'rE 'Ve 'vE 'Ll 'lL",
    "'sa 'ta 'rea 'vex 'mm 'lll 'dd 'x 'r 'v 'l '1 ' ' '' ''' 's's's",
    "it’s don’t they’re we’ve I’m you’ll he’d (curly U+2019)",
    "itʼs donʼt (U+02BC) it′s (prime) it`s it´s (acute) it＇s (fullwidth)",
    "rock'n'roll O'Neil d'Artagnan l'homme aujourd'hui y'all ma'am ne'er-do-well",
    "'Tis the season. 'twas 'em 'cause '90s '00s 'S'T'M'D",
    "\"'s\" ('s) ['t] {'re} <'ve> '''m''' 'll. 'd!",
    "'\u0073\u0301 '\u0074\u0308 (contraction + combining mark)",
    "Tom's dog's bone's owner's car's KEY'S. Jones' Jones's",
    "can't won't shan't ain't y'know 'n' 'kay",
    "'\u017f 'ſt it'ſ DON'ſ (long s)",
    "x'\u017fy '\u017f\u017f ''\u017f",
]
for t in CONTRACTIONS:
    add(t)

# --------------------------------------------------------------- whitespace
WS_CHARS = ["\t", "\x0b", "\x0c", "\r", "\n", "\r\n", " ", "\u0085", "\u00a0", "\u1680"] + \
    [chr(c) for c in range(0x2000, 0x200B)] + \
    ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b", "\ufeff", "\u180e", "\u2060",
     "\x1c", "\x1d", "\x1e", "\x1f"]
for w in WS_CHARS:
    add(w)
    add(w * 3)
    add("a" + w + "b")
    add("a" + w + w + "b")
    add(w + "x" + w)
    add("x " + w + " y")
    add("! " + w + "?" + w + w + "1" + w)
    add(w + "\n" + w + " z" + w + w + w)
    add("word" + w + "\r\n" + w + "next" + w + "'s" + w)
for a in ["\t", " ", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff"]:
    for b in ["\t", " ", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff"]:
        add("x" + a + b + "y" + a + b + a + "." + b + a + b)
WS_EXTRA = [
    "   ", "  \n  ", "\n\n\n", "\r\n\r\n", " \r\n \r\n ", "\t\t\tx", "x\t\t\t",
    "  leading and trailing  ", "\n\nparagraph one\n\nparagraph two\n\n",
    "line\r\nline\rline\nline\u2028line\u2029line\u0085line",
    "a \n b \n\n c  \n\n\n  d", "end with space ", "end with spaces    ",
    "end with newline\n", "end with crlf\r\n", "  \t \u00a0 \u3000 mixed runs \u2003\u2009 here \u205f\u202f",
    "x\u00a0\u00a0y \u00a0z", "tab\tseparated\tvalues\t1\t2\t3", " ! ", "  !!  ", " \n!", "\n !",
    "a  b   c    d     e", "\u3000\u3000全角スペース\u3000", "\u200bzero\u200bwidth\u200b",
    "\ufeffBOM at start", "BOM\ufeffinside\ufeff", "\u0085NEL\u0085", " \u0085 ", "x\u0085\u0085y",
    "!\u0085", "\u0085!", ".\u0085.", "a\u0085 b", "a \u0085b", "1\u00851", "\ufeff\ufeff", " \ufeff ", "!\ufeff!",
]
for t in WS_EXTRA:
    add(t)

# ----------------------------------------------------------- added tokens
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
            "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
            "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
            "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
            "<tool_response>", "</tool_response>", "<think>", "</think>"]
for s in SPECIALS:
    add(s)
    add("x" + s + "y")
    add(" " + s + " ")
    add(s + s)
    add("<" + s + ">")
    add(s[:-1])
    add(s[1:])
    add(s.upper())
add("".join(SPECIALS))
add(" ".join(SPECIALS))
add("\n".join(SPECIALS))
SPECIAL_EXTRA = [
    "<|end<|endoftext|>oftext|>", "<|endoftext|><|endoftext|><|endoftext|>",
    "<|endoftext", "endoftext|>", "<|endoftext|", "|endoftext|", "< |endoftext|>", "<| endoftext |>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nLet me think step by step.\n</think>\n\nThe answer is 42.",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<tool_response>\n{\"result\": 1}\n</tool_response>", "<tool_response></tool_response><think></think>",
    "<<think>>", "<</think>>", "<think><think>", "</think></think></think>", "<thinking>", "<think >", "< think>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>",
    "<|repo_name|>embedq<|file_sep|>engine/tokenizer.c\n/* hi */",
    "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>",
    "café<|endoftext|>e\u0301", "\u0301<|endoftext|>\u0301", "'s<|endoftext|>'s", "<|endoftext|>'s",
    "   <|endoftext|>   ", "\n<|im_end|>\n", "😀<|endoftext|>😀", "1<|endoftext|>2",
    "<|im_start|<|im_start|>|>", "<<|endoftext|>|>", "<|<|im_end|>|>", "<|ENDOFTEXT|> <|EndOfText|>",
    "<|endoftext|>" * 20, "x<think>y</think>z" * 5,
    "text <tool_response> with </tool_response> literal <think> tags </think>",
]
for t in SPECIAL_EXTRA:
    add(t)

# -------------------------------------------------- long and repetitive
LONG = [
    "a" * 5000, "A" * 3000, "ab" * 2500, "abc" * 1500, "0" * 6000, "1234567890" * 500,
    " " * 3000, "\n" * 2000, "\r\n" * 1000, "\t" * 1500, "!" * 4000, "." * 3000, "-" * 2500, "=" * 2000,
    "é" * 2000, "e\u0301" * 1000, "中" * 3000, "한" * 2000, "ـ" * 1000, "😀" * 1000, "👍🏽" * 500,
    "ก" * 2000, "ab " * 2000, "hello world " * 400, "a " * 2500, "aaaa" + " " * 1000 + "bbbb",
    "x" * 47, "x" * 48, "x" * 49, "x" * 50, "x" * 64, "x" * 127, "x" * 128, "x" * 129,
    "Pneumonoultramicroscopicsilicovolcanoconiosis " * 50,
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "supercalifragilisticexpialidocious" * 30,
    "ﷺ" * 300, "\u0301" * 500, "a\u0301" * 700, "\u3000" * 800, "\u00a0" * 900, "\u0085" * 300,
    "'s" * 1000, "'" * 1500, "<" * 1000, "<|" * 800, "|>" * 800,
    "ababababbabababbbababababaabababab" * 60, "abcdefghijklmnopqrstuvwxyz" * 150,
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. " * 40,
    "這是一段很長的中文文本沒有任何標點符號用來測試很長的字母序列在位元組對編碼中的表現" * 40,
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำจึงเป็นลำดับตัวอักษรที่ยาวมาก" * 40,
]
for t in LONG:
    add(t)
# long base64/hex blobs: long letter runs interleaved with digits
for k in range(6):
    n = [200, 700, 1500, 3000, 64, 49][k]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    add("".join(rng.choice(alphabet) for _ in range(n)))
    add("".join(rng.choice("0123456789abcdef") for _ in range(n)))
    add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)))

# ------------------------------------------------- control & special chars
CTRL = [
    "".join(chr(c) for c in range(1, 32)), "a\x01b\x02c\x1bd\x7fe", "\x00", "a\x00b", "\x00\x00 \x00x\x00",
    "NUL\x00 in the middle", "".join(chr(c) for c in range(0x80, 0xA0)), "x\u0080y\u009fz",
    "soft\u00adhyphen", "\u202aLRE\u202c \u202bRLE\u202c \u202dLRO\u202c \u202eRLO\u202c",
    "\u2066LRI\u2069 \u2067RLI\u2069 \u2068FSI\u2069", "\u200dZWJ\u200d \u200cZWNJ\u200c",
    "\ufff9anchor\ufffaannotation\ufffb \ufffc \ufffd\ufffd", "\ufffe\uffff\ufdd0\ufdef",
    "\U0001fffe\U0001ffff\U0010fffe\U0010ffff", "\U000e0001\U000e0020\U000e007f (tags)",
    "\ufe00\ufe0f\U000e0100\U000e01ef (variation selectors)", "\u034f\u115f\u1160\u3164\uffa0 (fillers)",
    "\ue000\ue001\uf8ff (private use)", "\U000f0000\U000ffffd\U00100000\U0010fffd (supplementary PUA)",
    "\u0378\u0379 \U000e0080 (unassigned)", "a\ue000b c\uf8ffd", "\ue000 \ue000\ue000",
]
for t in CTRL:
    add(t)

# -------------------------------------------------------- random by script
SCRIPTS = [
    (0x0041, 0x024F), (0x0370, 0x03FF), (0x0400, 0x052F), (0x0530, 0x058F), (0x0590, 0x05FF),
    (0x0600, 0x06FF), (0x0700, 0x074F), (0x0780, 0x07BF), (0x0900, 0x097F), (0x0980, 0x09FF),
    (0x0A00, 0x0A7F), (0x0A80, 0x0AFF), (0x0B00, 0x0B7F), (0x0B80, 0x0BFF), (0x0C00, 0x0C7F),
    (0x0C80, 0x0CFF), (0x0D00, 0x0D7F), (0x0D80, 0x0DFF), (0x0E00, 0x0E7F), (0x0E80, 0x0EFF),
    (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1200, 0x139F),
    (0x13A0, 0x13FF), (0x1400, 0x167F), (0x1680, 0x16FF), (0x1780, 0x17FF), (0x1800, 0x18AF),
    (0x1900, 0x19DF), (0x1A00, 0x1AAF), (0x1B00, 0x1B7F), (0x1E00, 0x1FFF), (0x2C00, 0x2C7F),
    (0x2D30, 0x2D7F), (0x3040, 0x30FF), (0x3130, 0x318F), (0x4E00, 0x9FFF), (0xA000, 0xA4CF),
    (0xA500, 0xA63F), (0xA980, 0xA9DF), (0xAC00, 0xD7A3), (0xFB00, 0xFDFF), (0xFE70, 0xFEFF),
    (0xFF00, 0xFFEF), (0x10000, 0x100FF), (0x10300, 0x1034F), (0x10400, 0x1044F),
    (0x11000, 0x1107F), (0x12000, 0x1237F), (0x13000, 0x1342F), (0x16800, 0x16A3F),
    (0x1D400, 0x1D7FF), (0x1E900, 0x1E95F), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF),
    (0x2000, 0x206F), (0x2100, 0x214F), (0x2190, 0x23FF), (0x2500, 0x27BF), (0x0300, 0x036F),
]
SEPS = [" ", " ", " ", ", ", ". ", "\n", " - ", "'s ", "\t", "(", ")", "?", "!", ": ", "\u3000", "、", "。", "\r\n", "  "]
for lo, hi in SCRIPTS:
    chars = block_chars(lo, hi)
    for _ in range(12):
        words = []
        for _ in range(rng.randint(1, 14)):
            words.append("".join(rng.choice(chars) for _ in range(rng.randint(1, 9))))
            words.append(rng.choice(SEPS))
        add("".join(words).rstrip(" ") if rng.random() < 0.5 else "".join(words))

# ------------------------------------------------------------ random mixes
POOL = []
for lo, hi in SCRIPTS:
    POOL.extend(block_chars(lo, hi))
POOL.extend(WS_CHARS)
POOL.extend(list("'''\"\"<>|/\\!?.,;:-_=+*&^%$#@~`()[]{}0123456789"))
POOL.extend(["<|endoftext|>", "<think>", "</think>", "<tool_response>", "<|im_start|>", "'s", "'LL", "'ſ", "e\u0301", "\u1100\u1161\u11a8"])
ASCII = [chr(c) for c in range(32, 127)] + ["\n", "\t", "'s", "'t", "'re", " the", " of"]
for k in range(1100):
    r = rng.random()
    if r < 0.35:
        n = rng.randint(1, 40)
        add("".join(rng.choice(POOL) for _ in range(n)))
    elif r < 0.6:
        n = rng.randint(20, 200)
        add("".join(rng.choice(POOL) for _ in range(n)))
    elif r < 0.8:
        n = rng.randint(5, 300)
        add("".join(rng.choice(ASCII) for _ in range(n)))
    else:
        # mix of natural fragments
        parts = [rng.choice(NATURAL + CODE + URLS + NUMBERS + CONTRACTIONS + EMOJI + NFC) for _ in range(rng.randint(2, 5))]
        add(rng.choice(["", " ", "\n", "\t", "<|endoftext|>", "\u3000", "'s "]).join(parts))

# ------------------------------------------- text extracted from PDFs (NUL)
# Appended last and without the rng, so the entries above keep their lines.
# PDF text extraction leaves U+0000 in text (padding, UTF-16 read as bytes);
# the worker and the CLI embed it (issue 15), HF tokenizers gives it id 188.
PDF_NUL = [
    "Annual report 2023\x00\x00\x00Page 1 of 12\x00Revenue grew 12%",
    "r\x00e\x00s\x00u\x00m\x00e\x00 \x00o\x00f\x00 \x00w\x00o\x00r\x00k\x00",
    "Table 3\x00 \x00Results\n\x00\x00\n\x00\tcol\x00",
    "\u00dcber\x00stra\u00dfe caf\u00e9\x00\u65e5\u672c\u8a9e\x00\u30c6\u30ad\u30b9\u30c8",
    "\x00<|endoftext|>\x00<|im_start|>\x00",
    "don\x00't stop, it\x00's fine\x00 \x00 \x00",
    "\x00\x00\x00\x00\x00\x00\x00\x00",
    "12\x0034\x00\U0001f600\x00\u0645\u0631\u062d\u0628\u0627",
]
for t in PDF_NUL:
    add(t)

# ------------------------------------------------------------------- write
if unicodedata.unidata_version != "14.0.0":
    print(f"make_corpus.py: note: Unicode {unicodedata.unidata_version} (corpus.jsonl was made "
          "with 14.0.0): random picks differ, regenerate the goldens", file=sys.stderr)
for t in out:
    o = {"text": t}
    if "\x00" in t:
        o["hex"] = t.encode("utf-8").hex()
    sys.stdout.write(json.dumps(o, ensure_ascii=False) + "\n")
print(f"make_corpus.py: {len(out)} texts, {sum(len(t.encode()) for t in out)} bytes of UTF-8",
      file=sys.stderr)
