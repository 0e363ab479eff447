#!/bin/sh
# test_synth.sh: the synthetic dataset means what it says. Generates 400 images (seed 3) with
# `vlmae synth` (or tests/test_synth_files --generate when vlmae has no synth subcommand) and
# checks with Python (json + re; PIL if present for pixels):
# - every file parses as a JSON list, every referenced image exists, splits are disjoint;
# - every caption (pre-training, held-out, retrieval, VE entailment) is true of its scene: each
#   noun phrase names an object there with that size/colour/position, counts and background
#   right, relations hold; VE contradictions are false, neutral statements are about one object;
# - region boxes are the named object's box; VQA answers recomputed from the scene; NLVR labels
#   recomputed; grounding expressions pick out exactly one object (no location words), its box is
#   the ground truth and a proposal hits it; testA/testB split by shape;
# - (with PIL) the pixel inside each object has the named colour.
# Then the same seed with --focal-probe (data/SYNTH.md): every file but pretrain.json, vg.json,
# retrieval_train.json is byte-identical to the default one (focal_probe.json is new), and the
# whole check above passes on it too; no pre-training caption, region or retrieval caption of a
# train image with large and small objects names a small object (each is true of the image's
# large objects alone, so no count or inventory either), other train images keep their texts,
# "small" still occurs; focal_probe.json holds exactly the test images with both sizes, 5
# captions each, every one true of the image's small objects alone (so of the image), none naming
# the background.
# The checker's reference is scenes.json (the generator's ground truth), so this also checks that
# scenes.json agrees with the pixels. Skips (77) without a Python 3.
set -eu
PY=${PYTHON:-/usr/bin/python3}
if ! "$PY" -c "import json, re" 2>/dev/null; then
    PY=python3
    if ! "$PY" -c "import json, re" 2>/dev/null; then
        echo "SKIP: no python3"
        exit 77
    fi
fi
build=${top_builddir:-.}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if "$build/vlmae" synth --help >/dev/null 2>&1; then
    gen="$build/vlmae synth"
else
    gen="$build/tests/test_synth_files --generate"
fi
$gen --out "$dir/data" --seed 3 --images 400 --size 96
cat >"$dir/check_synth.py" <<'PYEOF'
import json, os, re, sys
d, S = sys.argv[1], float(sys.argv[2])
base = sys.argv[3] if len(sys.argv) > 3 else None  # d: --focal-probe; base: the same seed without
NAMES = ['pretrain.json', 'pretrain_heldout.json', 'vg.json', 'vg_heldout.json', 'scenes.json',
         'retrieval_train.json', 'retrieval_val.json', 'retrieval_test.json', 'vqa_train.json',
         'vqa_val.json', 'vqa_test.json', 'answer_list.json', 've_train.json', 've_val.json',
         've_test.json', 'nlvr_train.json', 'nlvr_val.json', 'nlvr_test.json', 'grounding_train.json',
         'grounding_val.json', 'grounding_testA.json', 'grounding_testB.json']
data = {}
for n in NAMES:
    with open(os.path.join(d, n)) as f:
        data[n] = json.load(f)
    assert isinstance(data[n], list), n + ': not a list'
errors = []
if len(data['scenes.json']) >= 100:
    for n in NAMES:
        if not data[n]: errors.append(n + ': empty')
def err(where, msg):
    if len(errors) < 30: errors.append('%s: %s' % (where, msg))
scenes = {s['image']: s for s in data['scenes.json']}
for im in scenes:
    if not os.path.exists(os.path.join(d, im)): err('scenes', 'missing ' + im)
split = {im: s['split'] for im, s in scenes.items()}
COLORS = 'red|green|blue|yellow|purple|orange'
POSP = {'on the left': 'left', 'on the right': 'right', 'at the top': 'top', 'at the bottom': 'bottom', 'in the center': 'center'}
NP = re.compile(r'\b(?:(small|large) )?(?:(' + COLORS + r') )?(circle|square|triangle)\b(?! ?s\b)(?: (on the left|on the right|at the top|at the bottom|in the center))?')
NUMW = {'zero': 0, 'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6, 'seven': 7, 'eight': 8}
def match(sc, size, color, shape, pos):
    return [o for o in sc['objects'] if (not size or o['size'] == size) and (not color or o['color'] == color)
            and o['shape'] == shape and (not pos or o['position'] == POSP[pos])]
def centre(o):
    x, y, w, h = o['box']; return x + w / 2, y + h / 2
def rel_ok(a, b, rel):
    (ax, ay), (bx, by) = centre(a), centre(b); g = 0.15 * S
    return {'to the left of': ax < bx - g, 'to the right of': ax > bx + g, 'above': ay < by - g, 'below': ay > by + g}[rel]
def true_of(sc, cap):
    """Why the caption is false of the scene, or '' when it is true."""
    m = re.match(r'^(?:a|an) (.*?) (to the left of|to the right of|above|below) (?:a|an) (.*)$', cap)
    if m:
        p1, p2 = NP.fullmatch(m.group(1)), NP.fullmatch(m.group(3))
        if not p1 or not p2: return 'unparsed relation'
        if not any(rel_ok(a, b, m.group(2)) for a in match(sc, *p1.groups()) for b in match(sc, *p2.groups()) if a is not b):
            return 'relation false'
        return ''
    nps = NP.findall(cap)
    for sz, col, sh, pos in nps:
        if not match(sc, sz, col, sh, pos): return 'no %s %s %s %s' % (sz, col, sh, pos)
    for m in re.finditer(r'\b(two|three|four) (?:colored )?shapes\b', cap):
        if NUMW[m.group(1)] != len(sc['objects']): return 'count'
    for m in re.finditer(r'\b(two|three|four) (circle|square|triangle)s\b', cap):
        if sum(o['shape'] == m.group(2) for o in sc['objects']) != NUMW[m.group(1)]: return 'shape count'
    for m in re.finditer(r'\b(white|gray|black) background\b', cap):
        if m.group(1) != sc['background']: return 'background'
    if not nps and not re.search(r'shapes|circles|squares|triangles', cap): return 'says nothing'
    return ''
def check_captions(name, want_split):
    for e in data[name]:
        caps = e['caption'] if isinstance(e['caption'], list) else [e['caption']]
        sc = scenes.get(e['image'])
        if sc is None: err(name, 'unknown image'); continue
        if split[e['image']] != want_split: err(name, 'image from split ' + split[e['image']])
        for c in caps:
            why = true_of(sc, c)
            if why: err(name, '%r of %s: %s' % (c, e['image'], why))
check_captions('pretrain.json', 'train'); check_captions('pretrain_heldout.json', 'test')
check_captions('retrieval_train.json', 'train'); check_captions('retrieval_val.json', 'val'); check_captions('retrieval_test.json', 'test')
for e in data['retrieval_train.json']:
    if e['image_id'] != 'synth_' + e['image'][7:13]: err('retrieval_train', 'image_id')
for e in data['retrieval_test.json'] + data['retrieval_val.json']:
    if not isinstance(e['caption'], list) or len(e['caption']) != 5: err('retrieval test', 'want 5 captions')
def same_box(a, b, tol=0.06): return all(abs(x - y) <= tol for x, y in zip(a, b))
for name, sp in (('vg.json', 'train'), ('vg_heldout.json', 'test')):
    for e in data[name]:
        sc = scenes[e['image']]
        if split[e['image']] != sp: err(name, 'split')
        m = re.fullmatch(r'(?:a|an) (.*)', e['caption']); p = m and NP.fullmatch(m.group(1))
        if not p: err(name, 'unparsed %r' % e['caption']); continue
        if not any(same_box(o['box'], e['box']) for o in match(sc, *p.groups())): err(name, 'box not of a %r' % e['caption'])
        x, y, w, h = e['box']
        if not (0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= S + 0.05 and y + h <= S + 0.05): err(name, 'box outside image')
answers = set(data['answer_list.json'])
def vqa_answer(sc, q):
    objs = sc['objects']
    def only(lst): return lst[0] if len(lst) == 1 else None
    m = re.fullmatch(r'what color is the (circle|square|triangle)\?', q)
    if m: o = only([o for o in objs if o['shape'] == m.group(1)]); return o and o['color']
    m = re.fullmatch(r'what color is the (small|large) (circle|square|triangle)\?', q)
    if m: o = only([o for o in objs if o['size'] == m.group(1) and o['shape'] == m.group(2)]); return o and o['color']
    m = re.fullmatch(r'what shape is (.*)\?', q)
    if m: o = only([o for o in objs if o['position'] == POSP.get(m.group(1))]); return o and o['shape']
    if q == 'how many shapes are there?': return str(len(objs))
    m = re.fullmatch(r'how many (\w+) shapes are there\?', q)
    if m: return str(sum(o['color'] == m.group(1) for o in objs))
    m = re.fullmatch(r'is there an? (\w+) (circle|square|triangle)\?', q)
    if m: return 'yes' if any(o['color'] == m.group(1) and o['shape'] == m.group(2) for o in objs) else 'no'
    if q == 'what color is the background?': return sc['background']
    m = re.fullmatch(r'is the (\w+) (circle|square|triangle) large or small\?', q)
    if m: o = only([o for o in objs if o['color'] == m.group(1) and o['shape'] == m.group(2)]); return o and o['size']
    m = re.fullmatch(r'where is the (\w+) (circle|square|triangle)\?', q)
    if m: o = only([o for o in objs if o['color'] == m.group(1) and o['shape'] == m.group(2)]); return o and o['position']
    return None
qids = set()
for sp in ('train', 'val', 'test'):
    for e in data['vqa_%s.json' % sp]:
        if e['question_id'] in qids: err('vqa', 'duplicate question_id')
        qids.add(e['question_id'])
        if split[e['image']] != sp or e.get('dataset') != 'vqa': err('vqa', 'split/dataset')
        want = vqa_answer(scenes[e['image']], e['question'])
        if want is None or e['answer'] != [want] or want not in answers:
            err('vqa', '%r of %s: got %r want %r' % (e['question'], e['image'], e['answer'], want))
NEUTRAL = re.compile(r'the (.*) is (made of (?:wood|metal|paper|plastic|glass)|heavy|warm|cold|soft|new|old)')
for sp in ('train', 'val', 'test'):
    labels = {}
    for e in data['ve_%s.json' % sp]:
        im = e['image'] + '.jpg'
        if im not in scenes or split[im] != sp: err('ve', 'image/split %s' % e['image']); continue
        sc, s, lab = scenes[im], e['sentence'], e['label']
        labels[lab] = labels.get(lab, 0) + 1
        if lab == 'entailment' and true_of(sc, s): err('ve', 'entailment false: %r of %s (%s)' % (s, im, true_of(sc, s)))
        elif lab == 'contradiction' and not true_of(sc, s): err('ve', 'contradiction true: %r of %s' % (s, im))
        elif lab == 'neutral':
            m = NEUTRAL.fullmatch(s); p = m and NP.fullmatch(m.group(1))
            if not p or len(match(sc, *p.groups())) != 1: err('ve', 'neutral not about one object: %r' % s)
        elif lab not in ('entailment', 'contradiction', 'neutral'): err('ve', 'label ' + lab)
    if len(set(labels.values())) != 1: err('ve', 'labels unbalanced %s' % labels)
def has(sc, color=None, shape=None):
    return any((color is None or o['color'] == color) and (shape is None or o['shape'] == shape) for o in sc['objects'])
def nlvr_truth(a, b, s):
    m = re.fullmatch(r'the (left|right) image contains an? (\w+) (\w+)', s)
    if m: return has(a if m.group(1) == 'left' else b, m.group(2), m.group(3))
    m = re.fullmatch(r'both images contain an? (circle|square|triangle)', s)
    if m: return has(a, None, m.group(1)) and has(b, None, m.group(1))
    m = re.fullmatch(r'both images contain an? (\w+) shape', s)
    if m: return has(a, m.group(1)) and has(b, m.group(1))
    if s == 'the left image has more shapes than the right image': return len(a['objects']) > len(b['objects'])
    m = re.fullmatch(r'there are (\w+) shapes in total', s)
    if m: return NUMW[m.group(1)] == len(a['objects']) + len(b['objects'])
    m = re.fullmatch(r'exactly one image contains an? (\w+) (\w+)', s)
    if m: return has(a, m.group(1), m.group(2)) != has(b, m.group(1), m.group(2))
    m = re.fullmatch(r'both images have a (\w+) background', s)
    if m: return a['background'] == m.group(1) == b['background']
    return None
for sp in ('train', 'val', 'test'):
    n_true = 0
    for e in data['nlvr_%s.json' % sp]:
        a, b = scenes[e['images'][0]], scenes[e['images'][1]]
        if split[e['images'][0]] != sp or split[e['images'][1]] != sp: err('nlvr', 'split')
        t = nlvr_truth(a, b, e['sentence'])
        if t is None or e['label'] != ('True' if t else 'False'): err('nlvr', '%r %s: label %s' % (e['sentence'], e['images'], e['label']))
        n_true += e['label'] == 'True'
    n = len(data['nlvr_%s.json' % sp])
    if n >= 10 and not (0.3 * n <= n_true <= 0.7 * n): err('nlvr', '%s: %d of %d true' % (sp, n_true, n))
def iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])); iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy; return inter / (a[2] * a[3] + b[2] * b[3] - inter)
refs = set()
for name, sp in (('grounding_train.json', 'train'), ('grounding_val.json', 'val'), ('grounding_testA.json', 'test'), ('grounding_testB.json', 'test')):
    for e in data[name]:
        sc = scenes[e['image']]
        if split[e['image']] != sp or e['ref_id'] in refs: err(name, 'split or duplicate ref_id')
        refs.add(e['ref_id'])
        m = re.fullmatch(r'(?:the )?(?:(small|large) )?(?:(' + COLORS + r') )?(circle|square|triangle)', e['text'])
        if not m: err(name, 'unparsed %r' % e['text']); continue
        objs = match(sc, m.group(1), m.group(2), m.group(3), None)
        if len(objs) != 1 or not same_box(objs[0]['box'], e['bbox']): err(name, '%r not unique / wrong box' % e['text']); continue
        if not any(iou(p, e['bbox']) >= 0.5 for p in e['proposals']): err(name, 'no proposal hits the target')
        if name.endswith('testA.json') and objs[0]['shape'] != 'circle': err(name, 'testA is circles')
        if name.endswith('testB.json') and objs[0]['shape'] == 'circle': err(name, 'testB has no circles')
try:
    from PIL import Image
except ImportError:
    Image = None
if Image is not None:
    RGB = {'red': (220, 40, 40), 'green': (40, 170, 60), 'blue': (40, 80, 220), 'yellow': (235, 210, 40), 'purple': (140, 60, 180), 'orange': (245, 140, 30)}
    for im, sc in scenes.items():
        px = Image.open(os.path.join(d, im)).convert('RGB')
        if px.size != (int(S), int(S)): err('pixels', '%s size %s' % (im, px.size)); continue
        for o in sc['objects']:
            x, y, w, h = o['box']
            p = px.getpixel((int(x + w / 2), int(y + (0.65 if o['shape'] == 'triangle' else 0.5) * h)))
            near = min(RGB, key=lambda c: sum((a - b) ** 2 for a, b in zip(RGB[c], p)))
            if near != o['color']: err('pixels', '%s: %s %s looks %s %s' % (im, o['color'], o['shape'], near, p))
if base is not None:
    def load(n):
        with open(os.path.join(base, n)) as f: return json.load(f)
    with open(os.path.join(d, 'focal_probe.json')) as f: probe = json.load(f)
    def part(sc, size): return dict(sc, objects=[o for o in sc['objects'] if o['size'] == size])
    def mixed(sc): return {o['size'] for o in sc['objects']} == {'small', 'large'}
    n_mixed = 0
    for name in ('pretrain.json', 'retrieval_train.json', 'vg.json'):
        texts, old = {}, {}
        for e in data[name]: texts.setdefault(e['image'], []).append(e['caption'])
        for e in load(name): old.setdefault(e['image'], []).append(e['caption'])
        for im, caps in texts.items():
            sc = scenes[im]
            if not mixed(sc):
                if caps != old.get(im): err('focal ' + name, '%s has neither both sizes nor its default texts' % im)
                continue
            n_mixed += 1
            for c in caps:
                why = true_of(part(sc, 'large'), c)
                if why: err('focal ' + name, '%r of %s names a small object or counts it (%s)' % (c, im, why))
        for e in data[name] if name == 'vg.json' else ():
            if not any(same_box(o['box'], e['box']) for o in part(scenes[e['image']], 'large')['objects']) and mixed(scenes[e['image']]):
                err('focal vg.json', 'region %r of %s is not a large object' % (e['caption'], e['image']))
        if set(texts) != set(old): err('focal ' + name, 'other images than the default file')
    if not n_mixed: err('focal', 'no train image with both sizes')
    if not any(re.search(r'\bsmall\b', e['caption']) for e in data['pretrain.json']): err('focal', '"small" never occurs in pretrain.json')
    want = [im for im, sc in sorted(scenes.items()) if sc['split'] == 'test' and mixed(sc)]
    if [e['image'] for e in probe] != want: err('focal_probe.json', 'images are not the test images with both sizes')
    for e in probe:
        sc = scenes[e['image']]
        if not isinstance(e['caption'], list) or len(e['caption']) != 5: err('focal_probe.json', 'want 5 captions')
        for c in e['caption']:
            why = true_of(part(sc, 'small'), c) or true_of(sc, c) or ('names the background' if 'background' in c else '')
            if why: err('focal_probe.json', '%r of %s: %s' % (c, e['image'], why))
    print('check_synth: focal-bias probe: %d train images with both sizes, %d probe images' % (n_mixed // 3, len(probe)))
for e in errors: print('check_synth:', e)
print('check_synth: %d files, %d images, %s, %d problems' % (len(data), len(scenes), 'pixels checked' if Image else 'no PIL: pixels not checked', len(errors)))
sys.exit(1 if errors else 0)
PYEOF
"$PY" "$dir/check_synth.py" "$dir/data" 96 || exit 1
$gen --out "$dir/focal" --seed 3 --images 400 --size 96 --focal-probe
same=1
for f in "$dir"/data/*.json; do
    n=$(basename "$f")
    case $n in pretrain.json | vg.json | retrieval_train.json) continue ;; esac
    cmp -s "$f" "$dir/focal/$n" || { echo "FAIL: --focal-probe changed $n"; same=0; }
done
diff -rq "$dir/data/images" "$dir/focal/images" >/dev/null || { echo "FAIL: --focal-probe changed the images"; same=0; }
[ $same = 1 ] && echo "ok: --focal-probe leaves every other file and image byte-identical"
"$PY" "$dir/check_synth.py" "$dir/focal" 96 "$dir/data" && [ $same = 1 ]
