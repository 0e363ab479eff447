// model_device.c: the model's compute buffers on a backend's memory (see ModelDevice in model.h).
// On a host-memory backend nothing moves; on a device backend the parameters, their gradients,
// the momentum copy and the queues get device copies, parameter tensor views are re-pointed at
// them, and the host buffers become the mirror that checkpoints and sync checks read.
#include <string.h>

#include "engine/common.h"
#include "model/model.h"

static void bind_views(ParamSet *ps, float *data, float *grad) {
    for (int i = 0; i < ps->count; i++) {
        ParamInfo *pi = &ps->p[i];
        pi->t->data = data + pi->offset;
        pi->t->grad = grad ? grad + pi->offset : NULL;
    }
}

static size_t queue_bytes(const Model *m) {
    return (size_t)m->cfg.queue_size * m->cfg.embed_dim * sizeof(float);
}

void model_use_backend(Model *m, const Ops *ops) {
    if (ops == m->dev.ops) return;
    if (!m->dev.ops->host_memory) die("model_use_backend: the model already lives on %s", m->dev.ops->name);
    if (ops->host_memory) {  // another host backend (e.g. a checking wrapper of ops_cpu)
        m->dev.ops = ops;
        return;
    }
    ModelDevice d = {.ops = ops};
    d.params = ops->mem_alloc(m->params.total * sizeof(float));
    d.grad = ops->mem_alloc(m->params.total * sizeof(float));
    d.momentum = ops->mem_alloc(m->tower_n * sizeof(float));
    d.image_queue = ops->mem_alloc(queue_bytes(m));
    d.text_queue = ops->mem_alloc(queue_bytes(m));
    ops->mem_zero(d.grad, m->params.total * sizeof(float));
    m->dev = d;
    bind_views(&m->params, d.params, d.grad);
    bind_views(&m->momentum, d.momentum, NULL);
    model_to_device(m);
}

void model_to_host(Model *m) {
    const ModelDevice *d = &m->dev;
    if (d->ops->host_memory) return;
    d->ops->copy_d2h(m->params.data, d->params, m->params.total * sizeof(float));
    d->ops->copy_d2h(m->momentum.data, d->momentum, m->tower_n * sizeof(float));
    d->ops->copy_d2h(m->image_queue, d->image_queue, queue_bytes(m));
    d->ops->copy_d2h(m->text_queue, d->text_queue, queue_bytes(m));
}

void model_to_device(Model *m) {
    const ModelDevice *d = &m->dev;
    if (d->ops->host_memory) return;
    d->ops->copy_h2d(d->params, m->params.data, m->params.total * sizeof(float));
    d->ops->copy_h2d(d->momentum, m->momentum.data, m->tower_n * sizeof(float));
    d->ops->copy_h2d(d->image_queue, m->image_queue, queue_bytes(m));
    d->ops->copy_h2d(d->text_queue, m->text_queue, queue_bytes(m));
}

float model_temp(const Model *m) {
    float t;
    m->dev.ops->copy_d2h(&t, m->temp->data, sizeof(float));
    return t;
}

void model_release_device(Model *m) {
    ModelDevice *d = &m->dev;
    if (d->ops && !d->ops->host_memory) {
        d->ops->mem_free(d->params), d->ops->mem_free(d->grad), d->ops->mem_free(d->momentum);
        d->ops->mem_free(d->image_queue), d->ops->mem_free(d->text_queue);
    }
    *d = (ModelDevice){.ops = &ops_cpu, .params = m->params.data, .grad = m->params.grad,
                       .momentum = m->momentum.data, .image_queue = m->image_queue,
                       .text_queue = m->text_queue};
    bind_views(&m->params, m->params.data, m->params.grad);
    bind_views(&m->momentum, m->momentum.data, NULL);
}
