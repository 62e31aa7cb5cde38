#ifndef CTL_CLASSIFY_H
#define CTL_CLASSIFY_H
/* `ricochetctl classify [--json] FILE...`: offline bounce analysis
 * (DESIGN §7). Implemented on the bounce-analysis branch. */
int ctl_classify_main(int argc, char **argv);
#endif
