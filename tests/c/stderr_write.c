// Output on stderr must reach the caller's stderr, separate from stdout.
// e2e: stderr=contains
// e2e: stdout=to stdout
#include <string.h>
#include <unistd.h>

int main(void)
{
    static const char err[] = "to stderr: e2e marker\n";
    static const char out[] = "to stdout\n";
    if (write(2, err, strlen(err)) < 0 || write(1, out, strlen(out)) < 0)
        return 1;
    return 0;
}
