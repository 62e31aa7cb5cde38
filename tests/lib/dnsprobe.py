"""Asking the cluster's name servers the way a resolver or an MTA does, with
the real clients (dig, kdig), and reading their answers: one place for the
command lines and the parsing that the DNS, drill and MTA-like client tests
share. The caller runs the command (directly, or inside a namespace)."""
import re

STATUS = re.compile(r"status: (\w+)")
MX_LINE = re.compile(r"^(\S+)\s+\d+\s+IN\s+MX\s+(\d+)\s+(\S+)\s*$", re.M)
A_LINE = re.compile(r"^(\d+\.\d+\.\d+\.\d+)$", re.M)
NODE = re.compile(r"^n(\d+)\.")


def query_cmd(server, name, qtype, port=53, client="dig", tcp=False, short=False, wait=1):
    """The command line of one non-recursive query: one try, wait seconds."""
    if client == "dig":
        cmd = ["dig", "-p", str(port), f"@{server}", name, qtype, f"+time={wait}", "+tries=1", "+norecurse"]
    else:
        cmd = ["kdig", "-p", str(port), f"@{server}", name, qtype, f"+time={wait}", "+retry=0", "+norecurse"]
    if tcp:
        cmd.append("+tcp")
    if short:
        cmd.append("+short")
    return cmd


def rcode(output):
    """The answer's status (NOERROR, SERVFAIL, ...), or None when there was no answer."""
    m = STATUS.search(output)
    return m.group(1) if m else None


def mx_records(output, owner=None):
    """Sorted [(preference, host)] of the MX records in a dig/kdig answer
    (hosts lower case, with their final dot); only those of owner if given."""
    out = []
    for own, pref, host in MX_LINE.findall(output):
        if owner is None or own.lower().rstrip(".") == owner.lower().rstrip("."):
            out.append((int(pref), host.lower()))
    return sorted(out)


def node_of(host):
    """The node id of a cluster host name nN.zone, or None."""
    m = NODE.match(host)
    return int(m.group(1)) if m else None


def addresses(output):
    """The IPv4 addresses of a +short answer (dig also prints error lines there)."""
    return A_LINE.findall(output)
