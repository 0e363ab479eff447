// caption.h: ALBEF's caption / question clean-up, reproduced character for character.
//
// pre_caption is ALBEF dataset/utils.py pre_caption (Python 3 semantics):
//   caption = re.sub(r"([,.'!?\"()*#:;~])", '', caption.lower())
//               .replace('-', ' ').replace('/', ' ').replace('<person>', 'person')
//   caption = re.sub(r"\s{2,}", ' ', caption)
//   caption = caption.rstrip('\n').strip(' ')
//   words = caption.split(' '); if len(words) > max_words: caption = ' '.join(words[:max_words])
// Details that follow from that code and are kept on purpose:
//   - lower() is Python's str.lower(): full Unicode lower-casing (utf8proc tables), including
//     U+0130 -> "i\u0307" and the Final_Sigma rule (a word-final capital sigma becomes U+03C2).
//   - \s is Python's Unicode whitespace; only runs of two or more are collapsed, so a single tab
//     or newline inside the caption survives; only trailing '\n' and leading/trailing ' ' are
//     stripped; words are counted by splitting on ' ' alone.
//   - '<', '>', '[', ']', '&', '@', digits etc. are kept.
// Invalid UTF-8 bytes are replaced by U+FFFD (Python would never see them: JSON decoding fails).
// max_words <= 0 means "do not truncate" (Python would return "" for 0; nobody calls it so).
// Returns a malloc'ed NUL-terminated UTF-8 string; the caller frees it. Never returns NULL
// (dies on out-of-memory).
#ifndef VLMAE_CAPTION_H
#define VLMAE_CAPTION_H

char *pre_caption(const char *utf8, int max_words);

// pre_question is ALBEF's pre_question (VQA questions):
//   question = re.sub(r"([,.'!?\"()*#:;~])", '', question.lower()).replace('-', ' ').replace('/', ' ')
//   question = question.rstrip(' ')
//   words = question.split(' '); if len(words) > max_words: question = ' '.join(words[:max_words])
// (no whitespace collapse, no '<person>' rewrite, no left strip). Same conventions as above.
char *pre_question(const char *utf8, int max_words);

#endif
