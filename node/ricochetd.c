#include <stdio.h>
#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
int main(void) { rc_info("node", "start version=%s", "0.1.0"); return 0; }
