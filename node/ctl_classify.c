/* TEMPORARY PLACEHOLDER (branch http-ctl): the real `classify` comes from
 * the bounce-analysis branch, which owns node/ctl_classify.c. The lead
 * drops this file at merge. */
#include <stdio.h>

#include "node/ctl_classify.h"

int ctl_classify_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("classify: not built in this branch\n", stderr);
    return 2;
}
