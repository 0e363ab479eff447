#!/usr/bin/python3
"""report.py: bench/fidelity's runs -> report.md, report.json and PNG charts.

  report.py [--out DIR]      reads DIR/runs.jsonl (one JSON line per pre-training run, record.py),
                             DIR/setup.json, DIR/machine.txt, DIR/bench_macs.json

Per configuration and metric: mean +- sample standard deviation over the seeds. Each claim of the
paper is judged on the seeds' spread with Welch's t-test (two-sided, p < 0.05): "holds" when the
difference goes the claimed way and is significant, "does not hold" when it is significant the
other way, "cannot be told apart at this size" otherwise (and always with fewer than 2 seeds).
Needs numpy; matplotlib for the charts (skipped without it); scipy for exact p-values (without
it, |t| > 2.78, the 5% two-sided point at 4 degrees of freedom, stands in).
"""
import argparse
import json
import math
import os
import sys

import numpy as np

CONFIGS = ['albef', 'tcl', 'nomim', 'mim_random', 'rmim', 'vlmae']
LABEL = {'albef': 'ALBEF', 'tcl': 'TCL', 'nomim': 'VLMAE: no MIM', 'mim_random': 'VLMAE: MIM, random (all patches)',
         'rmim': 'VLMAE: RMIM', 'vlmae': 'VLMAE: RMIM + IFR (full)'}
SHORT = {'albef': 'ALBEF', 'tcl': 'TCL', 'nomim': 'no MIM', 'mim_random': 'MIM rand', 'rmim': 'RMIM',
         'vlmae': 'RMIM+IFR'}
# metric key -> (getter, label, higher is better, chance getter or None)
METRICS = {
    'zs': (lambda r: r['zs']['r_mean'], 'zero-shot retrieval R_mean', True, lambda r: r['zs']['chance_r_mean']),
    'zs_itc': (lambda r: r['zs']['itc_r_mean'], 'zero-shot retrieval R_mean, ITC only', True,
               lambda r: r['zs']['chance_r_mean']),
    'probe': (lambda r: r['probe']['r_mean'], 'focal probe, zero-shot R_mean', True,
              lambda r: r['probe']['chance_r_mean']),
    'ft': (lambda r: r['ft']['r_mean'], 'fine-tuned retrieval R_mean', True, lambda r: r['ft']['chance_r_mean']),
    'ftprobe': (lambda r: r['ftprobe']['r_mean'], 'focal probe after retrieval fine-tuning R_mean', True,
                lambda r: r['ftprobe']['chance_r_mean']),
    'vqa': (lambda r: r['vqa_acc'], 'VQA accuracy %', True, None),
    'attn_low': (lambda r: 100 * r['attn']['low'], 'attention: weakly attended patches %', False, None),
    'attn_top10': (lambda r: 100 * r['attn']['top10'], 'attention: mass of the top 10% patches %', False, None),
    'attn_entropy': (lambda r: r['attn']['entropy'], 'attention: normalised entropy', True, None),
    'cpu_ms': (lambda r: r['cpu_ms_per_sample'], 'pre-training CPU ms per sample', False, None),
    'pre_cpu_s': (lambda r: r['pre_cpu_s'], 'pre-training CPU s per run', False, None),
    'pre_wall_s': (lambda r: r['pre_wall_s'], 'pre-training wall s per run', False, None),
}
ALPHA = 0.05
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the source tree


def load(out):
    runs = []
    with open(os.path.join(out, 'runs.jsonl')) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    def opt(name, default):
        p = os.path.join(out, name)
        if not os.path.exists(p):
            return default
        with open(p) as f:
            return json.load(f) if name.endswith('.json') else f.read()
    return runs, opt('setup.json', {}), opt('machine.txt', ''), opt('bench_macs.json', None)


def values(runs, cfg, key):
    return np.array([METRICS[key][0](r) for r in runs if r['configuration'] == cfg], dtype=float)


def stat(v):
    if len(v) == 0:
        return None
    return {'mean': float(np.mean(v)), 'std': float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 'n': int(len(v)),
            'values': [float(x) for x in v]}


def pm(s, fmt='%.2f'):
    if s is None:
        return '-'
    return (fmt + ' ± ' + fmt) % (s['mean'], s['std']) if s['n'] > 1 else fmt % s['mean'] + ' (1 seed)'


def welch(a, b):
    """t and two-sided p of mean(a) - mean(b) (Welch); (nan, 1.0) when it cannot be computed."""
    if len(a) < 2 or len(b) < 2:
        return float('nan'), 1.0
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    d = np.mean(a) - np.mean(b)
    if va + vb == 0:
        return (math.copysign(float('inf'), d), 0.0) if d != 0 else (0.0, 1.0)
    t = d / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2) / (len(a) - 1) + (vb ** 2) / (len(b) - 1))
    try:
        from scipy import stats
        p = float(2 * stats.t.sf(abs(t), df))
    except ImportError:
        p = 0.01 if abs(t) > 2.78 else 1.0
    return float(t), p


def verdict(runs, a, b, key, direction=+1):
    """Is configuration a better than b on metric key? (direction -1: a lower than b is the claim)."""
    va, vb = values(runs, a, key), values(runs, b, key)
    if len(va) == 0 or len(vb) == 0:
        return 'missing', 'no runs'
    t, p = welch(va, vb)
    d = float(np.mean(va) - np.mean(vb))
    fmt = '%.3f' if key == 'attn_entropy' else '%.2f'
    txt = ('%s ' + fmt + ' vs %s ' + fmt + ', p = %.2g') % (SHORT[a], np.mean(va), SHORT[b], np.mean(vb), p)
    if min(len(va), len(vb)) < 2:
        return 'cannot be told apart', txt + ' (one seed)'
    if p < ALPHA and d * direction > 0:
        return 'holds', txt
    if p < ALPHA and d * direction < 0:
        return 'does not hold', txt
    return 'cannot be told apart', txt


def at_chance(runs, cfgs, key):
    """The configurations whose metric is not above its chance level (mean - 2 sd/sqrt(n) <= chance)."""
    ch = METRICS[key][3]
    if ch is None:
        return []
    low = []
    for c in cfgs:
        rs = [r for r in runs if r['configuration'] == c]
        if not rs:
            continue
        v = np.array([METRICS[key][0](r) for r in rs])
        chance = np.mean([ch(r) for r in rs])
        sd = np.std(v, ddof=1) if len(v) > 1 else 0.0
        if np.mean(v) - 2 * sd / math.sqrt(len(v)) <= chance:
            low.append(c)
    return low


def combine(parts):
    """Overall verdict of a claim from its parts [(verdict, text, metric label)]."""
    vs = [p[0] for p in parts]
    if all(v == 'holds' for v in vs):
        return 'holds'
    if all(v == 'does not hold' for v in vs):
        return 'does not hold'
    if any(v == 'does not hold' for v in vs) and not any(v == 'holds' for v in vs):
        return 'does not hold'
    if all(v == 'cannot be told apart' for v in vs):
        return 'cannot be told apart at this size'
    return 'mixed'


def claim_text(name, parts, note=''):
    overall = combine(parts)
    detail = '; '.join('%s: %s (%s)' % (lab, v, t) for v, t, lab in parts)
    return overall, '**%s — %s.** %s.%s' % (name, overall, detail, (' ' + note) if note else '')


def claims(runs, bench):
    out = []
    tasks = [('zs', 'zero-shot retrieval'), ('ft', 'fine-tuned retrieval'), ('vqa', 'VQA')]
    def parts(a, b, keys, direction=+1):
        return [verdict(runs, a, b, k, direction) + (lab,) for k, lab in keys]
    def chance_note(cfgs, keys):
        notes = []
        for k, lab in keys:
            low = at_chance(runs, cfgs, k)
            if low:
                notes.append('%s not above chance for %s' % (lab, ', '.join(SHORT[c] for c in low)))
        return ('Note: ' + '; '.join(notes) + '.') if notes else ''
    p = parts('vlmae', 'albef', tasks)
    out.append(('VLMAE >= ALBEF on retrieval and VQA',) +
               claim_text('VLMAE ≥ ALBEF on retrieval and VQA (paper Tables 1-3)', p,
                          chance_note(['vlmae', 'albef'], tasks)))
    p = parts('vlmae', 'tcl', tasks)
    out.append(('VLMAE >= TCL on retrieval and VQA',) +
               claim_text('VLMAE ≥ TCL on retrieval and VQA (paper Tables 1-3)', p, chance_note(['vlmae', 'tcl'], tasks)))
    p1 = parts('rmim', 'mim_random', tasks)
    p2 = parts('mim_random', 'nomim', tasks)
    both = [(v, t, 'RMIM > random MIM, ' + lab) for v, t, lab in p1] + \
           [(v, t, 'random MIM > no MIM, ' + lab) for v, t, lab in p2]
    out.append(('RMIM > random MIM > no MIM',) +
               claim_text('RMIM > MIM with random masking > no MIM (paper Table 6)', both,
                          chance_note(['rmim', 'mim_random', 'nomim'], tasks)))
    p = parts('vlmae', 'rmim', tasks)
    out.append(('IFR helps',) + claim_text('IFR helps: RMIM + IFR > RMIM (paper Table 6)', p,
                                           chance_note(['vlmae', 'rmim'], tasks)))
    # cost: the MAC counter is exact (no spread); CPU time per sample has one.
    cost = []
    if bench:
        m = {r['objective']: r for r in bench['results']}
        if 'vlmae' in m and 'albef' in m:
            for conv in ('thop', 'full'):
                a, b = m['vlmae']['gmacs_' + conv], m['albef']['gmacs_' + conv]
                cost.append(('holds' if a < b else 'does not hold',
                             'VLMAE %.4f vs ALBEF %.4f GMACs per sample' % (a, b), 'MACs (%s, counted)' % conv))
    cost.append(verdict(runs, 'vlmae', 'albef', 'cpu_ms', -1) + ('measured CPU ms per sample',))
    out.append(('VLMAE cheaper per sample than ALBEF',) +
               claim_text('VLMAE is cheaper per sample than ALBEF (paper Table 8)', cost,
                          'The same counter at the paper\'s base size (256 px, 16 tokens) gives ALBEF 60.5G and '
                          'VLMAE 49.6G MACs per sample (tests/test_flops.c): there the halved encoder input saves more '
                          'than the MAE decoder costs; the tiny model (16 patches, width 32, a decoder of width 24) '
                          'saves little in its encoder, so the verdict here is about this size only.'))
    focal = [verdict(runs, 'vlmae', 'albef', 'probe') + ('focal probe, zero-shot R_mean',),
             verdict(runs, 'vlmae', 'albef', 'attn_entropy') + ('attention entropy (wider = higher)',),
             verdict(runs, 'vlmae', 'albef', 'attn_low', -1) + ('weakly attended patches (wider = fewer)',)]
    notes = [chance_note(['vlmae', 'albef'], [('probe', 'the focal probe')])]
    ent = values(runs, 'vlmae', 'attn_entropy')
    if len(ent) and np.mean(ent) > 0.99:
        notes.append('VLMAE\'s maps are within 1%% of uniform (entropy %.3f): a [CLS] that attends to every patch '
                     'alike selects nothing, so "wider" here is not evidence that it sees more objects; the focal '
                     'probe is the direct test.' % np.mean(ent))
    out.append(('less focal bias',) +
               claim_text('Less focal bias: VLMAE retrieves by objects no caption pointed at, and attends more widely, '
                          'than ALBEF (paper section 4.9, Fig. 5)', focal, ' '.join(n for n in notes if n)))
    return out


def charts(out, runs, cfgs):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    x = np.arange(len(cfgs))
    colors = ['#777777', '#999999', '#9ecae1', '#6baed6', '#3182bd', '#08519c'][:len(cfgs)]

    def bars(ax, key, title, chance=True):
        st = [stat(values(runs, c, key)) for c in cfgs]
        m = [s['mean'] if s else 0 for s in st]
        e = [s['std'] if s else 0 for s in st]
        ax.bar(x, m, yerr=e, capsize=3, color=colors)
        for i, c in enumerate(cfgs):  # the seeds themselves
            v = values(runs, c, key)
            ax.plot(np.full(len(v), x[i]) + np.linspace(-0.15, 0.15, max(1, len(v))), v, 'k.', ms=3)
        ch = METRICS[key][3]
        if chance and ch is not None:
            cv = np.mean([ch(r) for r in runs])
            ax.axhline(cv, color='red', lw=1, ls='--', label='chance')
            ax.legend(fontsize=7, loc='upper left')
        ax.set_xticks(x)
        ax.set_xticklabels([SHORT[c] for c in cfgs], rotation=30, ha='right', fontsize=8)
        ax.set_title(title, fontsize=9)

    fig, axs = plt.subplots(2, 3, figsize=(12, 7))
    for ax, (k, t) in zip(axs.flat, [('zs', 'zero-shot retrieval, R_mean'), ('probe', 'focal probe (zero-shot), R_mean'),
                                     ('ft', 'fine-tuned retrieval, R_mean'), ('ftprobe', 'focal probe after fine-tuning'),
                                     ('vqa', 'VQA accuracy (%)'), ('zs_itc', 'zero-shot retrieval, ITC only')]):
        bars(ax, k, t)
    fig.suptitle('bench/fidelity: downstream results, mean ± std over seeds (dots: seeds)', fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'fidelity_tasks.png'), dpi=90)
    plt.close(fig)
    made.append('fidelity_tasks.png')

    fig, axs = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (k, t) in zip(axs, [('attn_entropy', 'attention entropy (1 = uniform)'),
                                ('attn_low', 'weakly attended patches (%)'),
                                ('attn_top10', 'mass of the top 10% patches (%)')]):
        bars(ax, k, t)
    fig.suptitle('Attention spread of the pre-trained image encoder ([CLS] to patches, last block)', fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'fidelity_attention.png'), dpi=90)
    plt.close(fig)
    made.append('fidelity_attention.png')

    fig, axs = plt.subplots(1, 3, figsize=(12, 3.6))
    st = {c: [r for r in runs if r['configuration'] == c] for c in cfgs}
    axs[0].bar(x, [st[c][0]['gmacs_thop'] * 1e3 if st[c] else 0 for c in cfgs], color=colors)
    axs[0].set_title('MACs per sample (thop convention), M', fontsize=9)
    bars(axs[1], 'cpu_ms', 'pre-training CPU ms per sample', chance=False)
    bars(axs[2], 'pre_cpu_s', 'pre-training CPU s per run', chance=False)
    for ax in axs[:1]:
        ax.set_xticks(x)
        ax.set_xticklabels([SHORT[c] for c in cfgs], rotation=30, ha='right', fontsize=8)
    fig.suptitle('Cost of pre-training', fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'fidelity_cost.png'), dpi=90)
    plt.close(fig)
    made.append('fidelity_cost.png')
    return made


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    runs, setup, machine, bench = load(a.out)
    if not runs:
        sys.exit('report.py: no runs in %s/runs.jsonl' % a.out)
    cfgs = [c for c in CONFIGS if any(r['configuration'] == c for r in runs)]
    seeds = sorted({r['seed'] for r in runs})
    summary = {c: {k: stat(values(runs, c, k)) for k in METRICS} for c in cfgs}
    cl = claims(runs, bench)
    pngs = charts(a.out, runs, cfgs)
    r0 = runs[0]

    L = []
    w = L.append
    w('# bench/fidelity: the VLMAE paper in miniature\n')
    w('Generated by `bench/fidelity/report.py` from `runs.jsonl` (%d runs: %d configurations x seeds %s). '
      'Each number is the mean ± sample standard deviation over the seeds (data, initialisation and '
      'fine-tuning all change with the seed). Nothing here is a test; the numbers are one machine on one day.\n'
      % (len(runs), len(cfgs), ', '.join(map(str, seeds))))
    w('## Setup and budget\n')
    w('- Data: `vlmae synth --seed S --images %d --focal-probe` per seed (data/SYNTH.md): %s train images '
      '(pre-training on `pretrain.json` + `vg.json`, 3 captions + one region per named object), held-out test '
      'pairs %s images / %s captions, focal probe %s images / %s captions (test images with large and small '
      'objects, captioned by their small objects only; no pre-training caption of a train image with both sizes '
      'names a small object).'
      % (setup.get('images', 0), int(setup.get('images', 0) * 0.8), r0['zs'].get('n_img', '?'), r0['zs'].get('n_txt', '?'),
         r0['probe'].get('n_img', '?'), r0['probe'].get('n_txt', '?')))
    rs = ' '.join('`--set %s`' % s for s in setup.get('recipe_sets', [])) or 'none'
    w('- Pre-training: `%s`, recipe overrides %s; per run **%d steps x batch %d = %d samples** (preset %s, '
      'text length %d), the same for every configuration; `train.seed` = the seed.'
      % (os.path.relpath(setup['config'], TOP) if setup.get('config', '').startswith(TOP + '/')
         else setup.get('config', '?'), rs, r0['steps'], r0['batch'],
         r0['samples'], r0['preset'], r0['text_len']))
    w('- Configurations (switches after the recipe): ' + '; '.join(
        '%s = `%s`' % (LABEL[c], [r for r in runs if r['configuration'] == c][0]['switches']) for c in cfgs) + '.')
    w('- Zero-shot retrieval: `vlmae eval -c configs/demo_retrieval.yaml` of the pre-training checkpoint on the '
      'test pairs and on the focal probe (ITC ranking, top-8 re-scored by ITM + ITC); R_mean = mean of TR/IR '
      'R@1/5/10 (%%). Retrieval fine-tuning: `configs/demo_retrieval.yaml`, %s steps (ITC + ITM on '
      '`retrieval_train.json`, same-image positives), then the same test pairs and probe. VQA: '
      '`bench/fidelity/vqa.yaml` (answer decoder from the fusion layers, 26 candidate answers), %s steps, accuracy '
      'on the test questions.' % (r0.get('ft_steps', setup.get('ft_steps')), r0.get('vqa_steps', setup.get('vqa_steps'))))
    w('- Attention spread (Fig. 5): `vlmae attnmap` of the pre-trained image encoder ([CLS] to patches, mean over '
      'heads, last block) over the first %s test images; low = share of patches with less than half the uniform '
      'share (src/tasks/attnmap.h); a wider map has higher entropy and fewer weakly attended patches.'
      % setup.get('attn_images', '?'))
    w('- Verdicts: Welch\'s t-test over the seeds, two-sided p < %.2f in the claimed direction = holds, in the '
      'other = does not hold, otherwise cannot be told apart at this size (always with one seed). "Not above '
      'chance": mean - 2 sd/sqrt(n) <= the chance level of a random ranking. %d t-tests are made below, '
      'so about one in twenty may cross p < %.2f by chance alone: a lone verdict near the threshold is weak evidence.'
      % (ALPHA, sum(t.count('p = ') for _, _, t in cl), ALPHA))
    if setup.get('note'):
        w('- Budget: ' + setup['note'])
    if setup.get('quick'):
        w('- **--quick run: a plumbing check, not a measurement.**')
    w('')
    w('Machine and command:\n')
    w('```\n' + machine.strip() + '\n```\n')

    w('## Claims\n')
    for name, overall, text in cl:
        w('- ' + text)
    w('')

    w('## Results (mean ± std over seeds)\n')
    cols = [('zs', '%.2f'), ('probe', '%.2f'), ('ft', '%.2f'), ('ftprobe', '%.2f'), ('vqa', '%.2f'),
            ('attn_entropy', '%.3f'), ('attn_low', '%.1f')]
    w('| configuration | zero-shot R_mean | focal probe R_mean | fine-tuned R_mean | probe after FT | VQA acc % | '
      'attn entropy | attn low % |')
    w('|---|---:|---:|---:|---:|---:|---:|---:|')
    for c in cfgs:
        w('| %s | %s |' % (LABEL[c], ' | '.join(pm(summary[c][k], f) for k, f in cols)))
    ch = lambda k: np.mean([METRICS[k][3](r) for r in runs])
    w('| chance (random ranking) | %.2f | %.2f | %.2f | %.2f | - | 1 (uniform) | 0 (uniform) |\n'
      % (ch('zs'), ch('probe'), ch('ft'), ch('ftprobe')))
    w('Retrieval details (zero-shot, test pairs): TR@1 / IR@1 / ITC-only R_mean\n')
    w('| configuration | TR@1 | IR@1 | R_mean ITC only | final losses (last log window) |')
    w('|---|---:|---:|---:|---|')
    for c in cfgs:
        rr = [r for r in runs if r['configuration'] == c]
        tr = stat(np.array([r['zs']['txt_r1'] for r in rr]))
        ir = stat(np.array([r['zs']['img_r1'] for r in rr]))
        fl = {k: np.mean([r['final_losses'].get(k, 0) for r in rr]) for k in ('itc', 'itm', 'mlm', 'rmim', 'ifr')}
        w('| %s | %s | %s | %s | %s |' % (LABEL[c], pm(tr), pm(ir), pm(summary[c]['zs_itc']),
                                          ' '.join('%s %.3f' % (k, v) for k, v in fl.items() if v)))
    w('')

    w('## Cost per pre-training run\n')
    w('MACs per sample: the MAC counter (`src/model/flops.c`, through `vlmae bench` at the run\'s preset, batch and '
      'text length; `thop` = Linear layers as the paper\'s Table 8 counts, `full` adds the attention products); '
      'training GFLOP = 2 x (3 x online + momentum) MACs, full convention. The check column is the same quantity as '
      'the pre-training log\'s MFU implies (MFU x peak / samples/s): equal when the counter describes the run. '
      'The VLMAE ablations compute the decoder even at loss weight 0, so they cost what VLMAE costs. CPU seconds: '
      'user + system of the `vlmae pretrain` process (/usr/bin/time; data loading threads included) on a machine '
      'shared with other jobs.\n')
    w('| configuration | MACs/sample thop (M) | full (M) | train GFLOP/sample | check (from MFU) | samples | '
      'T-MACs per run (thop) | CPU s per run | CPU ms per sample | wall s per run | fine-tune + eval CPU s |')
    w('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for c in cfgs:
        rr = [r for r in runs if r['configuration'] == c]
        chk = [r['train_gflop_per_sample_from_mfu'] for r in rr if r.get('train_gflop_per_sample_from_mfu')]
        w('| %s | %.1f | %.1f | %.4f | %s | %d | %.3f | %s | %s | %s | %s |' % (
            LABEL[c], rr[0]['gmacs_thop'] * 1e3, rr[0]['gmacs_full'] * 1e3, rr[0]['train_gflop_per_sample'],
            '%.4f' % np.mean(chk) if chk else '-', rr[0]['samples'], rr[0]['tmacs_thop_run'],
            pm(summary[c]['pre_cpu_s'], '%.1f'), pm(summary[c]['cpu_ms'], '%.3f'), pm(summary[c]['pre_wall_s'], '%.1f'),
            pm(stat(np.array([r['eval_finetune_cpu_s'] for r in rr])), '%.1f')))
    tot_wall = sum(r['run_wall_s'] for r in runs)
    tot_cpu = sum(r['pre_cpu_s'] + r['eval_finetune_cpu_s'] for r in runs)
    w('\nWhole campaign: %.1f min wall (runs alone, without synth + pack), %.1f CPU min (pre-training, fine-tuning, '
      'evaluation).\n' % (tot_wall / 60, tot_cpu / 60))

    if pngs:
        w('## Charts\n')
        for p in pngs:
            w('![%s](%s)\n' % (p, p))
    w('## Per-run numbers\n')
    w('`runs.jsonl` has every number of every run (one JSON line each, written by `record.py`); `report.json` '
      'the means and standard deviations above and the verdicts.\n')
    with open(os.path.join(a.out, 'report.md'), 'w') as f:
        f.write('\n'.join(L))
    with open(os.path.join(a.out, 'report.json'), 'w') as f:
        json.dump({'setup': setup, 'summary': summary,
                   'claims': [{'claim': n, 'verdict': v, 'text': t} for n, v, t in cl]}, f, indent=1)
    print('report.py: %s/report.md (%d runs), %s' % (a.out, len(runs), ', '.join(pngs) or 'no charts (no matplotlib)'))


if __name__ == '__main__':
    main()
