/* One device's write-verify inside the ngspice worker, in C.

   The same decisions as circuits/write_verify.py's controller and the same reads and pulses as
   spice/sequences.py's _Programmer: the same ngspice commands in the same order (a value this
   device's sequence already set is not sent again), the same arithmetic on the results. What C
   saves is the Python between two solves: after a solve of ~0.5 ms the interpreter's caches are
   cold and its ~50 us per operation became ~10 % of a write-verify (docs/NOTES.md).

   Nothing here builds netlist text from anything but a device state: every command, vector name
   and analysis arrives from Python, checked by circuits/netlist.py. A state is written with
   netlist.number's rule (finite; 0 or a magnitude within the limits passed in; 12 significant
   digits). ngspice's printed lines go to the worker's Python callback as ever: Python reads them
   afterwards, and on any failure runs the device again in Python for the exact error.

   Built by circuitnn/native.py and loaded by spice/compiled.py (plain C99 and libm; no Python
   headers). */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *v_name;
    int v_type;
    short v_flags;
    double *v_realdata;
    void *v_compdata;
    int v_length;
} vector_info;  /* sharedspice.h's vector_info */

typedef int (*command_fn)(char *);
typedef vector_info *(*vector_fn)(char *);

enum { OK = 0, DETACHED = 1, NO_VECTOR = 2, BAD_STATE = 3, NO_MEMORY = 4, UNEVEN = 5 };
enum { READ = 0, RESET = 1, PROGRAM = 2 };
/* An operation's row: sequences.COLUMNS, kind, device, x_before, x_after, current_A, v_device_V,
   conductance_S, energy_device_J, energy_source_J, duration_s, solve_s. */
enum { ROW = 11 };
#define STATE_CHARS 512

typedef struct {
    command_fn command;
    vector_fn vector;
    const int *exited;              /* set by the worker when ngspice asks to be detached */
    char **alter_text;              /* every alter's command, read's and pulses' */
    const int *alter_target;        /* the target each alter sets (an index) */
    const int *alter_value;         /* the value it sets (an index: equal texts, equal indices) */
    int n_targets;
    int read_first, read_count;     /* the read's alters */
    const int *pulse_first, *pulse_count;
    char **pulse_analysis;
    char *read_analysis;
    char **read_vectors;            /* top, bot */
    char **pulse_vectors;
    int n_pulse_vectors;
    int time_vector, pg_vector, top_vector, bot_vector, branch_vector, state_vector;  /* their indices */
    const char *state_prefix;       /* "alter <state target> dc=" */
    char *destroy;
    double r_sense_ohm, v_read_V, r_series_ohm, low, high, min_magnitude, max_magnitude;
} setup_t;

typedef struct {
    double target_S, tolerance, tolerance_floor_S;
    int max_pulses, initial_reset, adaptive_width, levels_set, levels_reset;
} program_t;

typedef struct {
    double *rows; long rows_capacity;  /* grown as needed, kept for the worker's life */
    int *applied;                   /* per target: the value index last set, -1: none */
    int applied_capacity;
    /* this call's */
    long n_rows, commands;
    double initial_S, final_S;
    int set_pulses, reset_pulses, reads, converged;
    char state_text[STATE_CHARS];   /* the state alter last set ("" none) */
} out_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int send(const setup_t *s, out_t *o, char *text)
{
    s->command(text);
    o->commands++;
    return *s->exited ? DETACHED : OK;
}

static int grow(void **buffer, long *capacity, long needed, size_t size)
{
    if (needed <= *capacity)
        return OK;
    long wanted = *capacity > 0 ? *capacity : 1024;
    while (wanted < needed)
        wanted *= 2;
    void *bigger = realloc(*buffer, (size_t)wanted * size);
    if (!bigger)
        return NO_MEMORY;
    *buffer = bigger;
    *capacity = wanted;
    return OK;
}

static int set_state(const setup_t *s, out_t *o, double x)
{
    if (!isfinite(x) || (x != 0.0 && (fabs(x) < s->min_magnitude || fabs(x) > s->max_magnitude)))
        return BAD_STATE;
    char text[STATE_CHARS];
    if (snprintf(text, sizeof text, "%s%.12g", s->state_prefix, x) >= (int)sizeof text)
        return BAD_STATE;
    if (strcmp(text, o->state_text) == 0)
        return OK;
    strcpy(o->state_text, text);
    return send(s, o, text);
}

static int set_alters(const setup_t *s, out_t *o, int first, int count)
{
    for (int k = first; k < first + count; k++) {
        int target = s->alter_target[k], value = s->alter_value[k];
        if (o->applied[target] == value)
            continue;
        o->applied[target] = value;
        if (send(s, o, s->alter_text[k]))
            return DETACHED;
    }
    return OK;
}

static double *new_row(out_t *o, int kind, double device, double x)
{
    if (grow((void **)&o->rows, &o->rows_capacity, (o->n_rows + 1) * ROW, sizeof(double)))
        return NULL;
    double *row = o->rows + o->n_rows * ROW;
    o->n_rows++;
    for (int k = 0; k < ROW; k++)
        row[k] = 0.0;
    row[0] = kind;
    row[1] = device;
    row[2] = row[3] = x;
    return row;
}

static int solve(const setup_t *s, out_t *o, char *analysis, double *row)
{
    double start = now_s();
    s->command(analysis);
    row[10] = now_s() - start;
    o->commands++;
    return *s->exited ? DETACHED : OK;
}

static int read_device(const setup_t *s, out_t *o, double device, double x, double *g)
{
    int status = set_state(s, o, x);
    if (!status)
        status = set_alters(s, o, s->read_first, s->read_count);
    double *row = new_row(o, READ, device, x);
    if (!row)
        return NO_MEMORY;
    if (status || (status = solve(s, o, s->read_analysis, row)))
        return status;
    double v[2];
    for (int k = 0; k < 2; k++) {
        vector_info *info = s->vector(s->read_vectors[k]);
        if (!info || !info->v_realdata || info->v_length <= 0) {
            send(s, o, s->destroy);
            return NO_VECTOR;
        }
        v[k] = info->v_realdata[0];
    }
    /* sequences.read_outcome and write_verify.controller_read, operation for operation */
    double top = v[0], bot = v[1];
    double current = bot / s->r_sense_ohm;
    row[4] = current;
    row[5] = top - bot;
    row[6] = *g = current / (s->v_read_V - current * s->r_series_ohm);
    return send(s, o, s->destroy);
}

static int pulse_device(const setup_t *s, out_t *o, int kind, double device, int index, double *x)
{
    int status = set_state(s, o, *x);
    if (!status)
        status = set_alters(s, o, s->pulse_first[index], s->pulse_count[index]);
    double *row = new_row(o, kind, device, *x);
    if (!row)
        return NO_MEMORY;
    if (status || (status = solve(s, o, s->pulse_analysis[index], row)))
        return status;
    double *v[6] = {0};
    int wanted[6] = {s->time_vector, s->pg_vector, s->top_vector, s->bot_vector, s->branch_vector,
                     s->state_vector};
    int n = -1;
    for (int k = 0; k < 6; k++) {
        vector_info *info = s->vector(s->pulse_vectors[wanted[k]]);
        if (!info || !info->v_realdata || info->v_length <= 0) {
            send(s, o, s->destroy);
            return NO_VECTOR;
        }
        if (n >= 0 && info->v_length != n) {
            send(s, o, s->destroy);
            return UNEVEN;
        }
        n = info->v_length;
        v[k] = info->v_realdata;
    }
    const double *t = v[0], *pg = v[1], *top = v[2], *bot = v[3], *branch = v[4], *state = v[5];
    /* sequences.pulse_outcome, operation for operation: trapezoid weights dt[i] + dt[i-1], each
       power times its weight, summed in time order */
    double e_device = 0.0, e_source = 0.0;
    for (int i = 0; i < n; i++) {
        double w = i < n - 1 ? t[i + 1] - t[i] : 0.0;
        if (i > 0)
            w = w + (t[i] - t[i - 1]);
        double d = (top[i] - bot[i]) * bot[i] * w, p = pg[i] * branch[i] * w;
        e_device = i ? e_device + d : d;
        e_source = i ? e_source + p : p;
    }
    double last = state[n - 1];
    double clipped = s->low > last ? s->low : last;  /* Python's max(x, low), then min(., high) */
    clipped = s->high < clipped ? s->high : clipped;
    row[3] = clipped;
    row[7] = e_device * 0.5 / s->r_sense_ohm;
    row[8] = -e_source * 0.5;
    row[9] = t[n - 1];
    *x = clipped;
    return send(s, o, s->destroy);
}

static int within(const program_t *p, double g)
{
    double band = p->tolerance * p->target_S;
    if (p->tolerance_floor_S > band)
        band = p->tolerance_floor_S;
    return fabs(g - p->target_S) <= band;
}

/* The controller of circuits/write_verify.py, run against the device from state x0. */
int cnn_write_verify(const setup_t *s, const program_t *p, int device, double x0, out_t *o)
{
    if (o->applied_capacity < s->n_targets) {
        int *bigger = realloc(o->applied, (size_t)s->n_targets * sizeof(int));
        if (!bigger)
            return NO_MEMORY;
        o->applied = bigger;
        o->applied_capacity = s->n_targets;
    }
    for (int t = 0; t < s->n_targets; t++)
        o->applied[t] = -1;
    o->n_rows = o->commands = 0;
    o->state_text[0] = '\0';
    o->set_pulses = o->reset_pulses = o->reads = o->converged = 0;

    double x = x0, g = 0.0;
    int status;
    if (p->initial_reset && (status = pulse_device(s, o, RESET, device, 0, &x)))
        return status;
    if ((status = read_device(s, o, device, x, &g)))
        return status;
    o->initial_S = g;
    int reads = 1, halvings = 0, last = 0;
    int converged = within(p, g);
    while (!converged && o->set_pulses + o->reset_pulses < p->max_pulses) {
        int direction = g < p->target_S ? 1 : -1;
        if (p->adaptive_width && last && direction != last)
            halvings++;
        int levels = direction > 0 ? p->levels_set : p->levels_reset;
        int level = halvings < levels - 1 ? halvings : levels - 1;
        int index = direction > 0 ? 1 + level : 1 + p->levels_set + level;
        if ((status = pulse_device(s, o, PROGRAM, device, index, &x)))
            return status;
        if (direction > 0)
            o->set_pulses++;
        else
            o->reset_pulses++;
        last = direction;
        if ((status = read_device(s, o, device, x, &g)))
            return status;
        reads++;
        converged = within(p, g);
    }
    o->final_S = g;
    o->reads = reads;
    o->converged = converged;
    return OK;
}
