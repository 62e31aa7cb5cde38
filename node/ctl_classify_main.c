/* ricochet-classify: `ricochetctl classify` as its own executable, for the
 * tests and the benchmark until they call ricochetctl. */
#include "node/ctl_classify.h"

int main(int argc, char **argv)
{
    return ctl_classify_main(argc, argv);
}
