#!/usr/bin/python3
"""record.py: bench/fidelity/run.sh's bookkeeping (standard library only).

  record.py --dims RUN/pre/config.yaml      prints "preset batch_size text_max_len" of a resolved config
  record.py --run R --configuration C --seed S --switches "..." --bench bench_macs.json --seconds N
                                            prints the run's JSON line (what run.sh left in R)
  record.py --summary < LINE                one line of text about a JSON line

What a run directory R holds (run.sh): pretrain.{out,time}, pre/ (config.yaml, log.jsonl, checkpoint),
zs.{out,time} and probe.{out,time} (zero-shot `vlmae eval` on the test pairs and the focal probe),
ft.{out,time} + ft/ (retrieval fine-tuning, its test line), ftprobe.* (the fine-tuned model on the
probe), vqa.{out,time} (VQA fine-tuning, its test line), attn/attnmap.tsv (vlmae attnmap).
*.time files are /usr/bin/time's "user system wall" seconds.
"""
import argparse
import json
import os
import re
import sys


def read_config(path):
    """The two-level keys (section.key) of a resolved config.yaml (config_dump's layout)."""
    cfg, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.split(' #')[0].rstrip()
            m = re.match(r'^(\w+):\s*$', line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r'^  (\w+):\s*(.*)$', line)
            if m and section:
                cfg[section + '.' + m.group(1)] = m.group(2).strip().strip('"')
    return cfg


def times(path):
    """(user, system, wall) seconds of a /usr/bin/time -f '%U %S %e' file."""
    with open(path) as f:
        last = [l for l in f.read().split('\n') if re.match(r'^[0-9.]+ [0-9.]+ [0-9.]+$', l)][-1]
    u, s, e = (float(x) for x in last.split())
    return u, s, e


def test_line(path, prefix='test:'):
    """The key/value pairs of the last 'test: k v k v ...' line of a command's output."""
    vals, size = None, {}
    with open(path) as f:
        for line in f:
            if not line.startswith(prefix):
                continue
            m = re.match(r'\s*(\d+) images, (\d+) texts', line[len(prefix):])
            if m:  # the header of a retrieval evaluation
                size = {'n_img': int(m.group(1)), 'n_txt': int(m.group(2))}
                continue
            w = line[len(prefix):].split()
            try:
                vals = {w[i]: float(w[i + 1]) for i in range(0, len(w) - 1, 2)}
            except ValueError:
                continue
            vals.update(size)
    if vals is None:
        raise SystemExit('record.py: no "%s" line in %s' % (prefix, path))
    return vals


def last_log(path):
    with open(path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    rows = [r for r in rows if 'itc' in r and 'samples_per_s' in r]
    return rows[-1] if rows else {}


def last_step(path):
    step = None
    with open(path) as f:
        for l in f:
            if l.strip():
                step = json.loads(l).get('step', step)
    return step


def attn(path):
    with open(path) as f:
        for line in f:
            w = line.rstrip('\n').split('\t')
            if w[0] == 'mean':
                return {'low': float(w[1]), 'top10': float(w[2]), 'entropy': float(w[3])}
    raise SystemExit('record.py: no mean line in ' + path)


def recall(v):
    return dict(v)  # every number of the evaluation line (txt_r1 ... r_mean, itc_r_mean, chance_r_mean, ...)


def record(a):
    R = a.run
    cfg = read_config(os.path.join(R, 'pre', 'config.yaml'))
    obj = cfg['model.objective']
    last = last_log(os.path.join(R, 'pre', 'log.jsonl'))
    steps = int(last.get('step', cfg['train.max_steps']))
    batch = int(cfg['train.batch_size'])
    with open(a.bench) as f:
        bench = json.load(f)
    b = [r for r in bench['results'] if r['objective'] == obj][0]
    peak = bench['machine']['peak_gflops_per_rank']
    u, s, e = times(os.path.join(R, 'pretrain.time'))
    rec = {'configuration': a.configuration, 'seed': a.seed, 'objective': obj, 'switches': a.switches,
           'preset': cfg.get('model.preset'), 'steps': steps, 'batch': batch, 'samples': steps * batch,
           'text_len': int(cfg['data.text_max_len']),
           'final_losses': {k: last[k] for k in ('itc', 'itm', 'mlm', 'rmim', 'ifr') if k in last},
           'pre_user_s': u, 'pre_sys_s': s, 'pre_cpu_s': u + s, 'pre_wall_s': e,
           'cpu_ms_per_sample': 1e3 * (u + s) / max(1, steps * batch),
           'samples_per_s_log': last.get('samples_per_s'),
           # the MAC counter (src/model/flops.c) through vlmae bench at this preset, batch, text length
           'gmacs_thop': b['gmacs_thop'], 'gmacs_full': b['gmacs_full'],
           'train_gflop_per_sample': b['train_gflop_per_sample'],
           # the same quantity as the pre-training log's MFU implies (peak x MFU / samples/s):
           # equal to the counter's when the bench preset is the run's model
           'train_gflop_per_sample_from_mfu': (last['mfu'] * peak / last['samples_per_s']
                                               if last.get('mfu') and last.get('samples_per_s') else None),
           'tmacs_thop_run': b['gmacs_thop'] * steps * batch / 1e3,
           'bench_cpu_ms_per_sample': 1e3 * b['cpu_s_per_step'] / bench['setup']['batch_per_rank'],
           'zs': recall(test_line(os.path.join(R, 'zs.out'))),
           'probe': recall(test_line(os.path.join(R, 'probe.out'))),
           'ft': recall(test_line(os.path.join(R, 'ft.out'))),
           'ftprobe': recall(test_line(os.path.join(R, 'ftprobe.out'))),
           'vqa_acc': test_line(os.path.join(R, 'vqa.out'))['vqa_acc'],
           'attn': attn(os.path.join(R, 'attn', 'attnmap.tsv'))}
    other = 0.0
    for n in ('zs', 'probe', 'ft', 'ftprobe', 'vqa', 'attn'):
        uu, ss, _ = times(os.path.join(R, n + '.time'))
        other += uu + ss
    rec['eval_finetune_cpu_s'] = other
    for n in ('ft', 'vqa'):  # the fine-tuning steps done
        rec[n + '_steps'] = last_step(os.path.join(R, n, 'log.jsonl'))
    rec['run_wall_s'] = a.seconds
    return rec


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--dims')
    p.add_argument('--run')
    p.add_argument('--configuration')
    p.add_argument('--seed', type=int)
    p.add_argument('--switches', default='')
    p.add_argument('--bench')
    p.add_argument('--seconds', type=float, default=0.0)
    p.add_argument('--summary', action='store_true')
    a = p.parse_args()
    if a.dims:
        c = read_config(a.dims)
        print(c['model.preset'], c['train.batch_size'], c['data.text_max_len'])
    elif a.summary:
        r = json.loads(sys.stdin.readline())
        print('zero-shot R_mean %.2f (chance %.2f), probe %.2f (chance %.2f), fine-tuned %.2f, VQA %.2f%%, '
              'attention entropy %.3f, pre-training %.1f CPU s; run %.0f s'
              % (r['zs']['r_mean'], r['zs']['chance_r_mean'], r['probe']['r_mean'], r['probe']['chance_r_mean'],
                 r['ft']['r_mean'], r['vqa_acc'], r['attn']['entropy'], r['pre_cpu_s'], r['run_wall_s']))
    elif a.run:
        print(json.dumps(record(a)))
    else:
        p.error('one of --dims, --run, --summary')


if __name__ == '__main__':
    main()
