// tokenizer.h: WordPiece tokenizer, compatible with HuggingFace BertTokenizer for bert-base-uncased
// as ALBEF uses it (transformers 4.8.1, ALBEF's models/tokenization_bert.py).
//
// What the text encoder is fed (ALBEF): Pretrain.py calls
//     tokenizer(text, padding='longest', truncation=True, max_length=25)
// on pre_caption()'d captions, with ALBEF's own BertTokenizer whose
// build_inputs_with_special_tokens returns [CLS] + X for a single sequence -- NO [SEP]
// (pairs stay [CLS] A [SEP] B [SEP]). So num_special_tokens_to_add() is 1 and truncation keeps
// the first max_length-1 word pieces: ids = [CLS] t1 ... t_k, k <= max_length-1, right-padded
// with [PAD]=0, attention mask 1 on [CLS] and the pieces, 0 on padding. ALBEF pads to the
// longest caption of the batch; we pad to a fixed max_len, which changes nothing the model
// computes (padding is masked out of attention and never chosen for MLM).
// Fine-tuning scripts call the same tokenizer with max_length=30 ([CLS] + up to 29 pieces).
// A literal "[SEP]" (or "[CLS]", "[PAD]", "[UNK]", "[MASK]", upper-case exactly) inside the text
// is kept whole and maps to its id, as HuggingFace does; ALBEF's VQA answers rely on this (they
// are written as answer + "[SEP]").
//
// Text pipeline (BertTokenizer.tokenize + BasicTokenizer + WordpieceTokenizer, do_lower_case,
// strip accents, tokenize_chinese_chars): split out the special tokens above; per segment drop
// U+0000, U+FFFD and control characters (category C*, except \t \n \r which are whitespace),
// map whitespace (space, \t, \n, \r, Zs) to ' ', put spaces around CJK ideographs, split on
// whitespace (also U+2028/U+2029, as Python's str.split does); per word lower-case, NFD, drop
// Mn marks, split off each punctuation character (ASCII 33-47, 58-64, 91-96, 123-126 or
// category P*); per piece greedy longest-match-first WordPiece with "##" continuations, a
// piece longer than 100 code points or with no segmentation becomes one [UNK].
// Unicode tables are utf8proc's (HuggingFace uses Python's unicodedata; they agree except for
// characters added in newer Unicode versions).
//
// A loaded Tokenizer is read-only: every function below may be called from many threads at once.
#ifndef VLMAE_TOKENIZER_H
#define VLMAE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

// Load a vocab.txt: one token per line, id = line index (0-based), lines end in '\n' (the last
// one may lack it). Fails (NULL, message in err) on an unreadable or empty file, invalid UTF-8,
// '\r' in a line, a duplicated token (the message names the file and both line numbers) or a
// missing [PAD]/[UNK]/[CLS]/[SEP]/[MASK].
Tokenizer *tokenizer_load(const char *vocab_path, char *err, size_t errlen);
void tokenizer_free(Tokenizer *tok);

// [CLS] + word pieces of text, truncated so that the result has at most max_len ids (ALBEF: no
// [SEP]). Writes ids[0..n) and returns n (0 only when max_len < 1). text is UTF-8 (invalid bytes
// count as U+FFFD, i.e. are dropped); NULL is the empty string.
int tokenizer_encode(const Tokenizer *tok, const char *text, int32_t *ids, int max_len);

// tokenizer_encode, then right-pad ids with [PAD] up to max_len; mask[i] = 1 for the returned
// n real ids, 0 for padding (mask may be NULL). Returns n.
int tokenizer_encode_padded(const Tokenizer *tok, const char *text, int32_t *ids, int32_t *mask,
                            int max_len);

// Word pieces only (no [CLS]/[SEP]), at most max_ids of them. Returns the number written.
int tokenizer_pieces(const Tokenizer *tok, const char *text, int32_t *ids, int max_ids);

int tokenizer_id(const Tokenizer *tok, const char *token); // -1 if absent
const char *tokenizer_token(const Tokenizer *tok, int id); // NULL if out of range
int tokenizer_vocab_size(const Tokenizer *tok);
int tokenizer_pad_id(const Tokenizer *tok);  // 0 in bert-base-uncased
int tokenizer_unk_id(const Tokenizer *tok);  // 100
int tokenizer_cls_id(const Tokenizer *tok);  // 101
int tokenizer_sep_id(const Tokenizer *tok);  // 102
int tokenizer_mask_id(const Tokenizer *tok); // 103

// 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3) of the vocab file's bytes.
uint64_t tokenizer_vocab_hash(const Tokenizer *tok);

#endif
