#!/usr/bin/env python3
"""Cross-check src/data/tokenizer.c and src/data/caption.c against a pure-Python re-statement of the
HuggingFace BertTokenizer (transformers 4.8.1 as ALBEF uses it: do_lower_case, strip accents,
tokenize_chinese_chars, special tokens never split, [CLS] + pieces with no [SEP]) and of ALBEF's
pre_caption / pre_question.

Not run by `make check` (needs python3); run by hand after changing the C code:

    python3 tests/tokenizer_cases.py ./test_tokenizer data/vocab.txt [N]

It feeds N random strings (ASCII, accents, Greek, CJK, Hangul, controls, odd whitespace,
punctuation, special-token literals) through `test_tokenizer --dump VOCAB`, which reads one
JSON-escaped line per case on stdin and prints "ids<TAB>pre_caption<TAB>pre_question<TAB>ids of pre_caption", and
compares with the Python results. Python's unicodedata may be an older Unicode version than
utf8proc's, so characters assigned between the two are excluded from the random alphabet.
"""
import json
import random
import re
import subprocess
import sys
import unicodedata

SPECIALS = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]


def load_vocab(path):
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    return vocab


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_chinese(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text):
    out = []
    for c in text:
        if ord(c) == 0 or ord(c) == 0xFFFD or is_control(c):
            continue
        out.append(" " if is_whitespace(c) else c)
    text = "".join(out)
    text = "".join(" %s " % c if is_chinese(ord(c)) else c for c in text)
    tokens = []
    for tok in text.strip().split():
        tok = tok.lower()
        tok = unicodedata.normalize("NFD", tok)
        tok = "".join(c for c in tok if unicodedata.category(c) != "Mn")
        cur = []
        for c in tok:
            if is_punctuation(c):
                if cur:
                    tokens.append("".join(cur))
                    cur = []
                tokens.append(c)
            else:
                cur.append(c)
        if cur:
            tokens.append("".join(cur))
    return " ".join(tokens).strip().split()


def wordpiece(tok, vocab):
    if len(tok) > 100:
        return ["[UNK]"]
    out, start = [], 0
    while start < len(tok):
        end, cur = len(tok), None
        while start < end:
            sub = tok[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        out.append(cur)
        start = end
    return out


def hf_encode(text, vocab, max_len):
    # PreTrainedTokenizer.tokenize: lower-case char by char except special tokens, split them out.
    pat = "(" + "|".join(re.escape(s) for s in SPECIALS) + ")|(.+?)"
    text = re.sub(pat, lambda m: m.groups()[0] or m.groups()[1].lower(), text)
    pieces = []
    for seg in re.split("(" + "|".join(re.escape(s) for s in SPECIALS) + ")", text):
        if seg in SPECIALS:
            pieces.append(seg)
        elif seg:
            for w in basic_tokenize(seg):
                pieces.extend(wordpiece(w, vocab))
    ids = [vocab["[CLS]"]] + [vocab[p] for p in pieces]
    return ids[:max_len]


def pre_caption(caption, max_words):
    caption = re.sub(r"([,.'!?\"()*#:;~])", '', caption.lower()).replace('-', ' ').replace('/', ' ').replace('<person>', 'person')
    caption = re.sub(r"\s{2,}", ' ', caption)
    caption = caption.rstrip('\n')
    caption = caption.strip(' ')
    words = caption.split(' ')
    if len(words) > max_words:
        caption = ' '.join(words[:max_words])
    return caption


def pre_question(question, max_words):
    question = re.sub(r"([,.'!?\"()*#:;~])", '', question.lower()).replace('-', ' ').replace('/', ' ')
    question = question.rstrip(' ')
    words = question.split(' ')
    if len(words) > max_words:
        question = ' '.join(words[:max_words])
    return question


def alphabet():
    a = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    a += list(",.'!?\"()*#:;~-/<>[]&@_%$^{}|\\`+=")
    a += [" "] * 12 + ["\t", "\n", "\r", "\x0b", "\x0c", "\x1f", "\x85", "\xa0", "\u2028", "\u2029",
                       "\u3000", "\u200b", "\ufeff", "\ufffd", "\ue000"]
    a += list("éÉèàÀçÇñÑüÜöÖßİıÅåøØæÆœŒ") + ["e\u0301", "A\u0308", "\u0301", "\u0323\u0302"]
    a += list("ΣσςΑΒΓΔΟΣ") + list("中国人的一是了我不在有个日本語汉字") + list("한국어ひらがなカタカナ")
    a += list("\u2018\u2019\u201c\u201d\u2014\u2026\u00b7\u0387\uff0e\uff1a\u00ab\u00bb\u00bf\u00a1")
    a += ["\u1fef", "\u037e", "\u00aa", "\u02b0", "\u2160", "\ufa0e", "\U00020000", "\U0001f600", "\U0001D165"]
    a += ["<person>", "<PERSON>", "[SEP]", "[MASK]", "[mask]", "[CLS", "straw", "berries", "unaffable", "Café",
          "ΟΔΟΣ", "ΣΑΣ", "x" * 101, "ab" * 30]
    return a


def random_case(rng, alpha):
    n = rng.randint(0, 40)
    return "".join(rng.choice(alpha) for _ in range(n))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    exe, vocab_path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    vocab = load_vocab(vocab_path)
    rng = random.Random(1234)
    alpha = alphabet()
    cases = ["i like strawberries", "unaffable", "Héllo", "hello,world!", "中国人", "A <person> on a bike-path/road.",
             "ΟΔΟΣ ΣΑΣ", "what is the dog doing?[SEP]", "x" * 150]
    cases += [random_case(rng, alpha) for _ in range(n)]
    MAXLEN, MAXW = 25, 8
    inp = "".join(json.dumps(c) + "\n" for c in cases)
    res = subprocess.run([exe, "--dump", vocab_path, str(MAXLEN), str(MAXW)], input=inp.encode(),
                         stdout=subprocess.PIPE, check=True)
    lines = res.stdout.decode("utf-8").split("\n")
    bad = 0
    for i, c in enumerate(cases):
        f = lines[i].split("\t")
        got = [f[0], json.loads(f[1]), json.loads(f[2]), f[3]]
        pc = pre_caption(c, MAXW)
        want = [" ".join(map(str, hf_encode(c, vocab, MAXLEN))), pc, pre_question(c, MAXW),
                " ".join(map(str, hf_encode(pc, vocab, MAXLEN)))]
        if got != want:
            bad += 1
            if bad <= 10:
                print("MISMATCH for %s\n  got  %r\n  want %r" % (json.dumps(c), got, want))
    print("%d cases, %d mismatches" % (len(cases), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
