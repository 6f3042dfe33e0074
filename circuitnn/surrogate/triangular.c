/* Block forward substitution for circuitnn/surrogate/inverse_rows.py: x <- T^-1 x, with T lower
   triangular in compressed sparse columns (row indices sorted within each column; unit != 0: the
   diagonal is 1 and not divided by) and x n x m, row-major (the m right-hand sides of a row are
   contiguous, so each entry of T is read once for all of them).

   The right-hand sides are zero but in the rows ``seeds``; a row is worked on only once something
   reached it, so a right-hand side with one or two nonzeros costs what it reaches (a small part of
   a nested-dissection factor), not n. ``touched`` (room for n) receives the rows reached, in order;
   their count is returned, or -1 when there is no memory for the row flags. Built and loaded by
   circuitnn.native (plain C99, no Python headers). */

#include <stdlib.h>

long cnn_lower_solve(long n, const int *colptr, const int *rowind, const double *val, double *x, long m,
                     int unit, const long *seeds, long n_seeds, long *touched)
{
    char *reached = calloc((size_t)n, 1);
    if (!reached)
        return -1;
    for (long s = 0; s < n_seeds; s++)
        reached[seeds[s]] = 1;
    long count = 0;
    for (long j = 0; j < n; j++) {
        if (!reached[j])
            continue;
        touched[count++] = j;
        double *xj = x + j * m;
        long p = colptr[j], end = colptr[j + 1];
        while (p < end && rowind[p] < j)
            p++;
        if (p < end && rowind[p] == j) {
            if (!unit) {
                double d = val[p];
                for (long r = 0; r < m; r++)
                    xj[r] /= d;
            }
            p++;
        }
        for (; p < end; p++) {
            long i = rowind[p];
            double t = val[p];
            double *xi = x + i * m;
            for (long r = 0; r < m; r++)
                xi[r] -= t * xj[r];
            reached[i] = 1;
        }
    }
    free(reached);
    return count;
}
