/* pipe_msg.c - the pipeline's message object (pipeline.h): constructor and
 * destructor. A library of its own (embedq_pipe_msg) so that the broker
 * modules and their test drivers, which run without pipeline.c, share them. */
#include <stdlib.h>

#include "pipeline.h"

pipe_msg *pipe_msg_new(void)
{
    pipe_msg *m = calloc(1, sizeof *m);
    if (m) m->partition = -1;
    return m;
}

void pipe_msg_free(pipe_msg *m)
{
    if (!m) return;
    free(m->data);
    free(m->key);
    for (int i = 0; i < m->n_fields; i++) {
        if (m->field_names) free(m->field_names[i]);
        if (m->field_values) free(m->field_values[i]);
    }
    free(m->field_names);
    free(m->field_values);
    free(m->field_name_lens);
    free(m->field_value_lens);
    free(m->out);
    free(m->out_key);
    free(m->ids);
    free(m->vec);
    msg_input_free(&m->in);
    free(m);
}
