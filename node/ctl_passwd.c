/* `ricochetctl passwd NAME < password`: prints a line for smtp.users_file
 * (PBKDF2, smtp/smtp_auth.h). The password is read from standard input
 * (first line), never from the command line. Works offline. */
#include <string.h>

#include "node/ctl.h"
#include "smtp/smtp_auth.h"

int ctl_cmd_passwd(const struct ctl *c, int argc, char **argv)
{
    (void)c;
    const struct ctl_command *cmd = ctl_find_command("passwd");
    if (argc == 2 && ctl_is_help(argv[1]))
        return ctl_help(cmd);
    if (argc != 2)
        return ctl_usage(cmd);
    char pw[512];
    if (fgets(pw, sizeof pw, stdin) == NULL) {
        ctl_err("passwd: no password on standard input");
        return CTL_USAGE;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    char line[600];
    if (pw[0] == '\0' || smtp_users_hash_line(argv[1], pw, SMTP_AUTH_DEFAULT_ITERATIONS, line, sizeof line) != 0) {
        ctl_err("passwd: empty password or a name with ':'");
        return CTL_USAGE;
    }
    puts(line);
    return CTL_OK;
}
