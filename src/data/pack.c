// pack.c: the packer behind `vlmae pack` -- annotations + image files -> HDF5 shards (see pack.h,
// data/README.md). The command line (options, --help) is cli/pack.c; this is pack_run.
//
// Flow: parse the annotation file(s) into a list of images, each with its raw captions (and
// boxes, in the annotation's pixel frame); group by image; split the list into shards of
// --shard-size images; pick this slice's shards (--shard-index/--num-shards); then worker threads
// read, decode (verify), optionally downscale + re-encode each image and clean its captions,
// while the main thread writes the results in input order into the shard writer (HDF5 is used
// from the main thread only). A bounded window keeps memory flat whatever the dataset size.
//
// This file: the per-image work of the threads, the ordered pipeline and the main loop writing
// the shards. The image list and the annotation readers that fill it are in pack_list.c (the
// list; pack_build_list picks the reader of FORMAT), pack_pretrain.c (albef, coco, vg, cc, sbu)
// and pack_tasks.c (vqa, ve, nlvr, grounding); pack_internal.h is what the four files share.
#define _GNU_SOURCE
#include "data/pack.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/caption.h"
#include "data/image.h"
#include "data/pack_internal.h"
#include "data/shard.h"
#include "engine/common.h"

// ---------------------------------------------------------------------------------------------
// Per-image work (threads)
enum { ST_OK, ST_MISSING, ST_TRUNCATED, ST_UNDECODABLE, ST_NO_TEXT, ST_NUM };
static const char *st_name[ST_NUM] = {"ok", "missing", "truncated", "undecodable",
                                       "no caption left"};

typedef struct {
    int status;
    uint8_t *bytes;
    size_t n;
    int h, w;
    int resized;
    int ntext;
    char **caps;           // cleaned captions (malloc'd)
    float (*boxes)[4];
    int64_t *src;          // index into PackList.texts of each kept caption (task fields)
    int fw, fh;            // frame of the annotation's pixel boxes
    uint8_t *bytes2;       // nlvr: the second image (NULL otherwise)
    size_t n2;
    int h2, w2, resized2;
    int dropped_empty, dropped_small, dropped_badbox;
    char msg[300];
} Result;

static void result_clear(Result *r) {
    free(r->bytes);
    free(r->bytes2);
    for (int k = 0; k < r->ntext; k++) free(r->caps[k]);
    free(r->caps);
    free(r->boxes);
    free(r->src);
    memset(r, 0, sizeof *r);
}

// The annotation path without --strip-prefix: what is joined to --images and stored as the key.
static const char *stripped(const PackOptions *o, const char *p) {
    if (o->strip_prefix) {
        size_t n = strlen(o->strip_prefix);
        if (!strncmp(p, o->strip_prefix, n)) p += n;
    }
    return p;
}

static char *join_path(const PackOptions *o, const char *p) {
    p = stripped(o, p);
    if (p[0] == '/' || !o->images || !o->images[0]) return strdup(p);
    size_t a = strlen(o->images), b = strlen(p);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, o->images, a);
    size_t k = a;
    if (a && o->images[a - 1] != '/') s[k++] = '/';
    while (*p == '/') p++;
    memcpy(s + k, p, strlen(p) + 1);
    return s;
}

// Read a whole file. Returns 0, or -1 with errno-ish status in *missing (1 = cannot open).
static int read_file(const char *path, uint8_t **out, size_t *n, char *msg, size_t msglen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msglen, "%s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 18, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            snprintf(msg, msglen, "out of memory");
            return -2;
        }
        if (len == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
            continue;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(msg, msglen, "read error");
        return -2;
    }
    *out = buf;
    *n = len;
    return 0;
}

static int decode_failure_status(size_t n, const char *emsg) {
    int trunc = n == 0 || strstr(emsg, "truncat") || strstr(emsg, "too short") ||
                strstr(emsg, "premature") || strstr(emsg, "Read Error") || strstr(emsg, "Not enough");
    return trunc ? ST_TRUNCATED : ST_UNDECODABLE;
}

// Downscale to --short-side when larger, and (re-)encode as JPEG unless the bytes are a JPEG
// kept as is. A JPEG input keeps 4:2:0 chroma (what it had, most likely); any other input (PNG:
// palette, gray, drawings) is encoded 4:4:4, since 4:2:0 smears flat colours with sharp edges
// (a palette PNG of pure colours: mean absolute error 53/255 against 2.7).
// *data / *n are replaced. Returns 0 or -1 (encoding failed; *data freed).
static int shrink_encode(const PackOptions *o, Image *im, uint8_t **data, size_t *n, int *resized) {
    int is_jpeg = *n >= 3 && (*data)[0] == 0xFF && (*data)[1] == 0xD8 && (*data)[2] == 0xFF;
    const JpegChroma chroma = is_jpeg ? JPEG_CHROMA_420 : JPEG_CHROMA_444;
    int shortside = im->h < im->w ? im->h : im->w;
    if (o->short_side > 0 && shortside > o->short_side) {
        // torchvision Resize(short_side): the long side is int(short_side * long / short).
        Image small = {0};
        if (im->h <= im->w) {
            small.h = o->short_side;
            small.w = (int)((long long)o->short_side * im->w / im->h);
        } else {
            small.w = o->short_side;
            small.h = (int)((long long)o->short_side * im->h / im->w);
        }
        image_resize_bicubic(im, &small);
        image_free(im);
        *im = small;
        *resized = 1;
        is_jpeg = 0;
    }
    if (!is_jpeg) {
        free(*data);
        *data = NULL;
        if (image_encode_jpeg_chroma(im, o->quality, chroma, data, n) != 0) return -1;
    }
    return 0;
}

// nlvr: the second image of the pair, read, verified and stored like the first. Returns 0, or -1
// with r->status and r->msg set (the pair is then skipped as a whole).
static int load_image2(const PackOptions *o, const char *path, Result *r) {
    uint8_t *data = NULL;
    size_t n = 0;
    char emsg[256];
    char *full = join_path(o, path);
    int rc = full ? read_file(full, &data, &n, emsg, sizeof emsg) : -2;
    if (rc != 0) {
        r->status = rc == -1 ? ST_MISSING : ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full ? full : path, emsg);
        free(full);
        return -1;
    }
    Image im = {0};
    if (image_decode(data, n, &im, emsg, sizeof emsg) != 0) {
        r->status = decode_failure_status(n, emsg);
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full, n == 0 ? "empty file" : emsg);
        free(full);
        free(data);
        return -1;
    }
    if (shrink_encode(o, &im, &data, &n, &r->resized2) != 0) {
        r->status = ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (JPEG re-encoding failed)", full);
        image_free(&im);
        free(full);
        return -1;
    }
    r->bytes2 = data;
    r->n2 = n;
    r->h2 = im.h;
    r->w2 = im.w;
    image_free(&im);
    free(full);
    return 0;
}

static void process_item(const PackOptions *o, const PackList *L, const PackItem *it, Result *r) {
    memset(r, 0, sizeof *r);
    uint8_t *data = NULL;
    size_t n = 0;
    char emsg[256];
    char *full = join_path(o, it->path);
    int rc = full ? read_file(full, &data, &n, emsg, sizeof emsg) : -2;
    if (rc == -1 && it->alt_path) {
        char *alt = join_path(o, it->alt_path);
        if (alt && read_file(alt, &data, &n, emsg, sizeof emsg) == 0) {
            free(full);
            full = alt;
            rc = 0;
        } else {
            free(alt);
        }
    }
    if (rc != 0) {
        r->status = rc == -1 ? ST_MISSING : ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full ? full : it->path, emsg);
        free(full);
        return;
    }
    Image im = {0};
    if (image_decode(data, n, &im, emsg, sizeof emsg) != 0) {
        r->status = decode_failure_status(n, emsg);
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full, n == 0 ? "empty file" : emsg);
        free(full);
        free(data);
        return;
    }
    // Captions: clean; boxes: clip to the frame, normalise, drop small regions.
    int W = it->ann_w > 0 ? it->ann_w : im.w, H = it->ann_h > 0 ? it->ann_h : im.h;
    r->caps = malloc((size_t)it->ntext * sizeof(char *));
    r->boxes = malloc((size_t)it->ntext * sizeof(*r->boxes));
    r->src = malloc((size_t)it->ntext * sizeof(int64_t));
    r->fw = W, r->fh = H;
    if (!r->caps || !r->boxes || !r->src) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    for (int k = 0; k < it->ntext; k++) {
        const RawText *t = &L->texts[it->first_text + k];
        float nb[4] = {NAN, NAN, NAN, NAN};
        if (!isnan(t->box[0])) {
            double x0 = fmax(0, t->box[0]), y0 = fmax(0, t->box[1]);
            double x1 = fmin(W, (double)t->box[0] + t->box[2]);
            double y1 = fmin(H, (double)t->box[1] + t->box[3]);
            if (!(x1 > x0 && y1 > y0)) {
                r->dropped_badbox++;
                continue;
            }
            if ((x1 - x0) * (y1 - y0) < o->min_region_frac * (double)W * H) {
                r->dropped_small++;
                continue;
            }
            nb[0] = (float)(x0 / W);
            nb[1] = (float)(y0 / H);
            nb[2] = (float)((x1 - x0) / W);
            nb[3] = (float)((y1 - y0) / H);
        }
        char *c = t->is_question ? pre_question(t->caption, o->max_words) : pre_caption(t->caption, o->max_words);
        if (!c[0]) {
            free(c);
            r->dropped_empty++;
            continue;
        }
        r->caps[r->ntext] = c;
        memcpy(r->boxes[r->ntext], nb, sizeof nb);
        r->src[r->ntext] = it->first_text + k;
        r->ntext++;
    }
    if (r->ntext == 0) {
        r->status = ST_NO_TEXT;
        snprintf(r->msg, sizeof r->msg, "%s", full);
        image_free(&im);
        free(data);
        free(full);
        return;
    }
    if (shrink_encode(o, &im, &data, &n, &r->resized) != 0) {
        r->status = ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (JPEG re-encoding failed)", full);
        image_free(&im);
        free(full);
        return;
    }
    if (it->path2 && load_image2(o, it->path2, r) != 0) {
        image_free(&im);
        free(data);
        free(full);
        return;
    }
    r->status = ST_OK;
    r->bytes = data;
    r->n = n;
    r->h = im.h;
    r->w = im.w;
    image_free(&im);
    free(full);
}

// ---------------------------------------------------------------------------------------------
// Ordered parallel pipeline

typedef struct {
    const PackOptions *o;
    const PackList *L;
    const int64_t *jobs;   // item index per job
    int64_t njobs;
    Result *ring;
    unsigned char *ready;
    int64_t window;
    int64_t next;          // next job to hand out
    int64_t consumed;      // jobs taken by the writer
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_space;
} Pipe;

static void *worker(void *arg) {
    Pipe *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->next < p->njobs && p->next - p->consumed >= p->window)
            pthread_cond_wait(&p->cv_space, &p->mu);
        if (p->next >= p->njobs) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        int64_t j = p->next++;
        pthread_mutex_unlock(&p->mu);
        Result r;
        process_item(p->o, p->L, &p->L->items[p->jobs[j]], &r);
        pthread_mutex_lock(&p->mu);
        p->ring[j % p->window] = r;
        p->ready[j % p->window] = 1;
        pthread_cond_broadcast(&p->cv_ready);
        pthread_mutex_unlock(&p->mu);
    }
}

// ---------------------------------------------------------------------------------------------
// Main

static int64_t MIN_I64(int64_t a, int64_t b) { return a < b ? a : b; }

// Create the directories of --out PREFIX. mkdir reports EEXIST for a regular file too, so an
// existing component must also be a directory.
static int mkdir_parents(const char *prefix) {
    char *p = strdup(prefix);
    if (!p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        struct stat sb;
        if (mkdir(p, 0777) != 0 && (errno != EEXIST || (stat(p, &sb) == 0 && !S_ISDIR(sb.st_mode)))) {
            fprintf(stderr, "vlmae pack: cannot create directory %s (--out %s): %s\n", p, prefix,
                    strerror(errno == EEXIST ? ENOTDIR : errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    free(p);
    return 0;
}

// Before any work: the directories of --out exist and a file can be created there (a read-only
// or full file system, or a path under /proc, fails here, not after the annotations are read and
// the images decoded). The probe file is removed at once.
static int check_output_writable(const char *prefix) {
    if (mkdir_parents(prefix) != 0) return -1;
    size_t n = strlen(prefix) + 64;
    char *probe = malloc(n);
    if (!probe) return -1;
    snprintf(probe, n, "%s-write-test.%ld.tmp", prefix, (long)getpid());
    FILE *f = fopen(probe, "wb");
    int ok = f != NULL;
    int e = errno;
    if (f) {
        ok = fputc('x', f) != EOF;
        ok &= fclose(f) == 0;
        e = errno;
        unlink(probe);
    }
    if (!ok) {
        const char *slash = strrchr(prefix, '/');
        int dl = slash ? (int)(slash - prefix) : 1;
        fprintf(stderr, "vlmae pack: cannot write shards to %.*s (--out %s): %s\n", dl,
                slash ? (slash == prefix ? "/" : prefix) : ".", prefix, strerror(e));
    }
    free(probe);
    return ok ? 0 : -1;
}

// Where the images of a format are looked for: appended to the first "missing" line of the
// report when no image at all was found (most often --images points one level off).
static const char *missing_hint(const PackOptions *o) {
    if (!strcmp(o->format, "vg"))
        return "every image is missing: vg reads --images DIR + the last two parts of each url in "
               "image_data.json (DIR/VG_100K/1.jpg, DIR/VG_100K_2/2.jpg; without --image-data "
               "DIR/VG_100K/ID.jpg or DIR/VG_100K_2/ID.jpg), so --images must be the folder that "
               "holds VG_100K/ and VG_100K_2/";
    if (!strcmp(o->format, "coco"))
        return "every image is missing: coco reads --images DIR + each image's file_name "
               "(DIR/000000000139.jpg), so --images must be the image folder itself (train2017/)";
    return "every image is missing: images are read at --images DIR + the path in the annotation "
           "(minus --strip-prefix), so --images must be the folder those paths start from";
}

typedef struct {
    long long count[ST_NUM];
    long long packed;      // items in the shards written (count[ST_OK] were readable)
    char examples[ST_NUM][NEXAMPLES][300];
    long long texts, dropped_empty, dropped_small, dropped_badbox, resized;
    unsigned long long bytes;
} Stats;

static void fmt_duration(double s, char *buf, size_t n) {
    long long t = (long long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%lldh%02lldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
    else snprintf(buf, n, "%llds", t);
}

int pack_run(const PackOptions *o) {
    double t0 = now_seconds();
    if (check_output_writable(o->out) != 0) return 1;
    PackList L;
    if (!o->quiet) fprintf(stderr, "pack: reading annotations (%s)...\n", o->format);
    if (pack_build_list(&L, o) != 0) {
        pack_free_list(&L);
        return 1;
    }
    if (o->limit > 0 && L.nitems > o->limit) L.nitems = o->limit;
    const int64_t N = L.nitems;
    const int64_t T = (N + o->shard_size - 1) / o->shard_size;  // shards in the whole dataset
    const int64_t s0 = T * o->shard_index / o->num_shards, s1 = T * (o->shard_index + 1) / o->num_shards;
    fprintf(stderr, "pack: %lld images with %lld captions in the annotations -> %lld shards of %d; "
            "this run: shards %lld..%lld (slice %d of %d), %d threads (%.1f s)\n",
            (long long)N, (long long)(N ? L.items[N - 1].first_text + L.items[N - 1].ntext : 0),
            (long long)T, o->shard_size, (long long)s0, (long long)s1 - 1, o->shard_index,
            o->num_shards, o->threads, now_seconds() - t0);
    if (L.bad_entries) {
        fprintf(stderr, "pack: %lld malformed annotation entries skipped, e.g.:\n", L.bad_entries);
        for (long long k = 0; k < L.bad_entries && k < NEXAMPLES; k++)
            fprintf(stderr, "pack:   %s\n", L.bad_examples[k]);
    }
    if (N == 0) {
        fprintf(stderr, "vlmae pack: no image with a caption in the annotations\n");
        pack_free_list(&L);
        return 1;
    }
    // Which shards to pack (existing complete shards are kept unless --overwrite).
    int64_t nsh = s1 - s0;
    int64_t *todo = malloc((size_t)(nsh > 0 ? nsh : 1) * sizeof(int64_t));
    int64_t ntodo = 0, present = 0;
    size_t plen = strlen(o->out) + 32;
    char *path = malloc(plen);
    for (int64_t t = s0; t < s1; t++) {
        snprintf(path, plen, "%s-%05lld.h5", o->out, (long long)t);
        if (!o->overwrite && access(path, F_OK) == 0) {
            char err[1024];
            Shard *s = shard_open_flags(path, SHARD_OPEN_NO_KEYS, err, sizeof err);
            int opened = s != NULL;
            int64_t nimg = opened ? shard_num_images(s) : 0;
            if (opened) shard_close(s);
            if (nimg > 0) {
                present++;
                continue;
            }
            if (opened) {
                // An older vlmae wrote a shard with 0 images when none was found: worth nothing,
                // and a failed repack must not leave it behind.
                unlink(path);
                fprintf(stderr, "pack: %s exists but holds no image: removed, packing it again\n", path);
            } else {
                fprintf(stderr, "pack: %s exists but does not open (%s): packing it again\n", path, err);
            }
        }
        todo[ntodo++] = t;
    }
    if (present)
        fprintf(stderr, "pack: %lld shards already present and valid, kept (--overwrite to "
                "repack)\n", (long long)present);
    // Jobs: the items of the shards to pack, in order.
    int64_t njobs = 0;
    for (int64_t k = 0; k < ntodo; k++) {
        int64_t a = todo[k] * o->shard_size, b = MIN_I64(a + o->shard_size, N);
        njobs += b - a;
    }
    int64_t *jobs = malloc((size_t)(njobs ? njobs : 1) * sizeof(int64_t));
    int64_t *job_shard = malloc((size_t)(ntodo ? ntodo : 1) * sizeof(int64_t));  // first job
    {
        int64_t j = 0;
        for (int64_t k = 0; k < ntodo; k++) {
            job_shard[k] = j;
            int64_t a = todo[k] * o->shard_size, b = MIN_I64(a + o->shard_size, N);
            for (int64_t i = a; i < b; i++) jobs[j++] = i;
        }
    }
    Pipe p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.L = &L;
    p.jobs = jobs;
    p.njobs = njobs;
    p.window = 4 * (int64_t)o->threads + 8;
    p.ring = calloc((size_t)p.window, sizeof(Result));
    p.ready = calloc((size_t)p.window, 1);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv_ready, NULL);
    pthread_cond_init(&p.cv_space, NULL);
    pthread_t *th = calloc((size_t)o->threads, sizeof(pthread_t));
    int nth = 0;
    for (int i = 0; i < o->threads && njobs > 0; i++) {
        if (pthread_create(&th[nth], NULL, worker, &p) == 0) nth++;
    }
    if (njobs > 0 && nth == 0) {
        fprintf(stderr, "vlmae pack: cannot start threads\n");
        return 1;
    }
    Stats st;
    memset(&st, 0, sizeof st);
    int failed = 0, written = 0;
    int64_t in_shard = 0;  // items written into the open shard (counted as packed when it is kept)
    ShardWriter *w = NULL;
    int64_t cur = -1;  // index into todo of the open shard
    double last = now_seconds(), tstart = now_seconds();
    for (int64_t j = 0; j < njobs; j++) {
        // Open the next shard when j is its first job.
        if (!failed && (cur + 1 < ntodo && job_shard[cur + 1] == j)) {
            cur++;
            snprintf(path, plen, "%s-%05lld.h5", o->out, (long long)todo[cur]);
            char err[1024];
            w = shard_writer_open(path, o->dataset, 0, err, sizeof err);
            if (!w) {
                fprintf(stderr, "vlmae pack: %s\n", err);
                failed = 1;
            }
        }
        pthread_mutex_lock(&p.mu);
        while (!p.ready[j % p.window]) pthread_cond_wait(&p.cv_ready, &p.mu);
        Result r = p.ring[j % p.window];
        p.ready[j % p.window] = 0;
        p.consumed = j + 1;
        pthread_cond_broadcast(&p.cv_space);
        pthread_mutex_unlock(&p.mu);
        st.count[r.status]++;
        st.dropped_empty += r.dropped_empty;
        st.dropped_small += r.dropped_small;
        st.dropped_badbox += r.dropped_badbox;
        if (r.status != ST_OK) {
            long long c = st.count[r.status];
            if (c <= NEXAMPLES) snprintf(st.examples[r.status][c - 1], 300, "%s", r.msg);
        } else if (!failed) {
            char err[1024];
            const PackItem *it = &L.items[jobs[j]];
            int64_t row = shard_writer_add_image(w, r.bytes, r.n, r.h, r.w, stripped(o, it->path),
                                                 err, sizeof err);
            int64_t row2 = -1;
            if (row >= 0 && r.bytes2) {
                row2 = shard_writer_add_image(w, r.bytes2, r.n2, r.h2, r.w2, stripped(o, it->path2), err,
                                              sizeof err);
                if (row2 < 0) row = -1;
            }
            for (int k = 0; k < r.ntext && row >= 0; k++) {
                int64_t ti = shard_writer_add_text(w, (uint32_t)row, r.caps[k], strlen(r.caps[k]), r.boxes[k],
                                                   err, sizeof err);
                if (ti < 0) {
                    row = -1;
                    break;
                }
                const RawText *rt = &L.texts[r.src[k]];
                if (rt->label >= 0 || row2 >= 0 || rt->answers || rt->key || rt->nprops > 0) {
                    // task fields; proposals normalised in the frame of the boxes, clipped
                    float *props = rt->nprops > 0 ? malloc((size_t)rt->nprops * 4 * sizeof(float)) : NULL;
                    for (int q = 0; q < rt->nprops && props; q++) {
                        const float *b = rt->props + 4 * q;
                        double x0 = fmax(0, b[0]), y0 = fmax(0, b[1]);
                        double x1 = fmin(r.fw, (double)b[0] + b[2]), y1 = fmin(r.fh, (double)b[1] + b[3]);
                        props[4 * q + 0] = (float)(x0 / r.fw);
                        props[4 * q + 1] = (float)(y0 / r.fh);
                        props[4 * q + 2] = (float)(x1 > x0 ? (x1 - x0) / r.fw : 0.0);
                        props[4 * q + 3] = (float)(y1 > y0 ? (y1 - y0) / r.fh : 0.0);
                    }
                    ShardTextExtra ex = {0};
                    ex.has_label = rt->label >= 0;
                    ex.label = rt->label;
                    ex.has_image2 = row2 >= 0;
                    ex.image2 = (uint32_t)row2;
                    ex.answers = rt->answers;
                    ex.answers_len = rt->answers ? strlen(rt->answers) : 0;
                    ex.proposals = props;
                    ex.n_proposals = props ? rt->nprops : 0;
                    ex.key = rt->key;
                    if (shard_writer_set_extra(w, ti, &ex, err, sizeof err) < 0) row = -1;
                    free(props);
                }
            }
            if (row < 0) {
                fprintf(stderr, "vlmae pack: %s\n", err);
                failed = 1;
            } else {
                in_shard++;
            }
            st.texts += r.ntext;
            st.resized += r.resized + r.resized2;
            st.bytes += r.n + r.n2;
        }
        result_clear(&r);
        // Close the shard after its last job.
        int last_of_shard = (cur + 1 < ntodo) ? (j + 1 == job_shard[cur + 1]) : (j + 1 == njobs);
        if (last_of_shard && w) {
            char err[1024];
            long long nimg = shard_writer_num_images(w), ntxt = shard_writer_num_texts(w);
            if (failed) {
                shard_writer_abort(w);
            } else if (nimg == 0) {
                // Nothing to keep: a shard file with no image would be "kept" by the next run
                // (after, say, --images is corrected), which would then pack nothing.
                shard_writer_abort(w);
                fprintf(stderr, "pack: %s: no image could be packed, not written\n", path);
            } else if (shard_writer_finish(w, err, sizeof err) != 0) {
                fprintf(stderr, "vlmae pack: %s\n", err);
                failed = 1;
            } else {
                written++;
                st.packed += in_shard;
                if (!o->quiet)
                    fprintf(stderr, "pack: wrote %s (%lld images, %lld captions)\n", path, nimg, ntxt);
            }
            w = NULL;
            in_shard = 0;
        }
        double t = now_seconds();
        if (!o->quiet && o->progress_s > 0 && t - last >= o->progress_s) {
            last = t;
            double rate = (double)(j + 1) / (t - tstart);
            char eta[32];
            fmt_duration((double)(njobs - j - 1) / (rate > 0 ? rate : 1), eta, sizeof eta);
            long long skipped = (long long)(j + 1) - st.count[ST_OK];
            fprintf(stderr, "pack: %lld/%lld images (%.0f%%), %.1f images/s, %lld skipped, eta %s\n",
                    (long long)(j + 1), (long long)njobs, 100.0 * (double)(j + 1) / (double)njobs,
                    rate, skipped, eta);
        }
        if (failed) {
            // Stop handing out work; drain what is in flight.
            pthread_mutex_lock(&p.mu);
            int64_t stop = p.next;  // results j+1 .. stop-1 are still to arrive
            p.njobs = stop;         // workers exit after their current item
            pthread_cond_broadcast(&p.cv_space);
            pthread_mutex_unlock(&p.mu);
            for (int64_t k = j + 1; k < stop; k++) {
                pthread_mutex_lock(&p.mu);
                while (!p.ready[k % p.window]) pthread_cond_wait(&p.cv_ready, &p.mu);
                p.ready[k % p.window] = 0;
                p.consumed = k + 1;
                pthread_cond_broadcast(&p.cv_space);
                pthread_mutex_unlock(&p.mu);
                result_clear(&p.ring[k % p.window]);
            }
            break;
        }
    }
    for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
    if (w) shard_writer_abort(w);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv_ready);
    pthread_cond_destroy(&p.cv_space);
    free(th);
    free(p.ring);
    free(p.ready);

    // ---- Final report
    double el = now_seconds() - t0;
    char dur[32];
    fmt_duration(el, dur, sizeof dur);
    long long skipped = st.count[ST_MISSING] + st.count[ST_TRUNCATED] + st.count[ST_UNDECODABLE] +
                        st.count[ST_NO_TEXT];
    fprintf(stderr,
            "pack: report: %s %d shard(s) written, %lld kept; %lld of %lld images packed "
            "(%lld re-encoded at short side %d), %lld captions, %.1f MB of JPEG, in %s\n",
            failed ? "FAILED after" : "done:", written, (long long)present, st.packed,
            (long long)njobs, st.resized, o->short_side, st.texts, (double)st.bytes / 1e6, dur);
    fprintf(stderr,
            "pack: report: skipped images: %lld (missing %lld, truncated %lld, undecodable %lld, "
            "no caption left %lld)\n",
            skipped, st.count[ST_MISSING], st.count[ST_TRUNCATED], st.count[ST_UNDECODABLE],
            st.count[ST_NO_TEXT]);
    char small[96] = "";
    if (o->min_region_frac > 0)
        snprintf(small, sizeof small, ", %lld regions under %g%% of the image",
                 st.dropped_small + L.small_regions, 100 * o->min_region_frac);
    fprintf(stderr,
            "pack: report: dropped captions: %lld empty after clean-up%s, %lld boxes outside the "
            "image; %lld annotation images without captions, %lld malformed annotation entries\n",
            st.dropped_empty, small, st.dropped_badbox, L.no_text_items, L.bad_entries);
    int all_missing = njobs > 0 && st.count[ST_MISSING] == njobs;
    for (int s = ST_MISSING; s < ST_NUM; s++) {
        for (long long k = 0; k < st.count[s] && k < NEXAMPLES; k++)
            fprintf(stderr, "pack: report: %s: %s%s%s\n", st_name[s], st.examples[s][k],
                    all_missing && k == 0 ? " -- " : "", all_missing && k == 0 ? missing_hint(o) : "");
        if (st.count[s] > NEXAMPLES)
            fprintf(stderr, "pack: report: %s: ... and %lld more\n", st_name[s],
                    st.count[s] - NEXAMPLES);
    }
    int rc = failed ? 1 : 0;
    if (!failed && njobs > 0 && st.count[ST_OK] == 0) {
        fprintf(stderr, "vlmae pack: no image could be packed: is --images right (%s)?\n",
                o->images ? o->images : "(not given)");
        rc = 1;
    }
    free(path);
    free(todo);
    free(jobs);
    free(job_shard);
    pack_free_list(&L);
    return rc;
}
