/* msg_golden.h - the fixed vector and output options behind the golden
 * output examples (schemas/v1/examples/output-*), shared by msg_tool and
 * msg_test. */
#ifndef EQ_MSG_GOLDEN_H
#define EQ_MSG_GOLDEN_H

#define GOLDEN_MODEL      "Qwen3-Embedding-0.6B"
#define GOLDEN_COLLECTION "embedq"
#define GOLDEN_TOKENS     12
#define GOLDEN_DIMS       32 /* when the input gives no dimensions */

/* v[i] = ((i % 7) - 3) / 8, exact in binary, except a few values that show
 * the 9-digit float32 form. */
static inline void golden_vector(float *v, int d)
{
    for (int i = 0; i < d; i++)
        v[i] = (float)((i % 7) - 3) / 8.0f;
    if (d > 5) v[5] = 0.1f;
    if (d > 6) v[6] = -1.17549435e-38f; /* -FLT_MIN */
    if (d > 13) v[13] = 3.0e-7f;
}

#endif
