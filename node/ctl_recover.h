#ifndef CTL_RECOVER_H
#define CTL_RECOVER_H
/* `ricochetctl recover`: offline forced recovery of a node whose cluster
 * lost its majority for good (docs/OPERATIONS.md). */
int ctl_recover_main(int argc, char **argv);
#endif
