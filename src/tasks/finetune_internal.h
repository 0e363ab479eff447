// finetune_internal.h: private to the fine-tuning harness (finetune.c, finetune_model.c), not
// part of its interface (finetune.h).
#ifndef VLMAE_FINETUNE_INTERNAL_H
#define VLMAE_FINETUNE_INTERNAL_H

// 1 when s ends with suffix ("vit.pos_embed" parameter names, ".h5.extra" files).
int ft_ends_with(const char *s, const char *suffix);

#endif
