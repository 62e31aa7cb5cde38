#!/usr/bin/python3
"""Scripted SMTP server for the egress peer tests (Debian's aiosmtpd).

Server-wide behaviour (--mode):
  normal      answer per recipient (below)
  greet421    greet with "421 4.3.2" and close
  greetstall  never greet
  noehlo      refuse EHLO with 502 (the client must fall back to HELO)
  mail451     refuse MAIL FROM with 451
  greet554    greet with a multiline "554 5.7.1" and close
  longline    answer EHLO with a 5000-byte line (hostile: over the client's limit)
  mixedcodes  answer EHLO with continuation lines of different codes
Per recipient, by the local part's prefix:
  ok…         250                 t450…   450 4.2.1 busy      t451once… 451 first time, 250 later
  p550…       550 5.1.1 unknown   p552…   552 5.2.2 full      p554…     554 5.7.1 rejected
  stallrcpt…  never answer RCPT
Per message, by the first recipient's prefix, after the final dot:
  dropdata…   close the connection without a reply
  stalldata…  never answer            slowdata…  answer 250 after 0.3 s
  d554…       554 5.7.1 content rejected    d451… 451 4.3.0 try later
Options: --size N advertises SIZE N; --pipelining advertises PIPELINING;
--tls-cert/--tls-key offer STARTTLS. Every accepted message is appended to
--log as one JSON object per line (mail_from, mail_options, rcpts, data,
peer, tls). With --rcpt-log, every RCPT command (accepted or not) is
appended there too (mail_from, rcpt, reply), so a test can prove that an
address was never offered.
"""
import argparse
import asyncio
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP

SEEN = {}


class Handler:
    def __init__(self, args):
        self.args = args

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.args.pipelining:
            responses.insert(1, '250-PIPELINING')
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.args.mode == 'mail451':
            return '451 4.3.0 MAIL refused for now'
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return '250 2.1.0 Ok'

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await self.rcpt_reply(envelope, address)
        if self.args.rcpt_log:
            with open(self.args.rcpt_log, 'a') as f:
                f.write(json.dumps({'mail_from': envelope.mail_from, 'rcpt': address,
                                    'options': rcpt_options, 'reply': reply}) + '\n')
        return reply

    async def rcpt_reply(self, envelope, address):
        local = address.split('@')[0].lower()
        if local.startswith('stallrcpt'):
            await asyncio.sleep(3600)
        if local.startswith('t450'):
            return '450 4.2.1 <%s>: mailbox busy, try later' % address
        if local.startswith('t451once'):
            SEEN[address] = SEEN.get(address, 0) + 1
            if SEEN[address] == 1:
                return '451 4.3.0 <%s>: temporary failure, first attempt' % address
        if local.startswith('p550'):
            return '550 5.1.1 <%s>: Recipient address rejected: User unknown' % address
        if local.startswith('p552'):
            return '552 5.2.2 <%s>: Mailbox full' % address
        if local.startswith('p554'):
            return '554 5.7.1 <%s>: Relay access denied' % address
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 Ok'

    async def handle_DATA(self, server, session, envelope):
        first = envelope.rcpt_tos[0].split('@')[0].lower()
        if first.startswith('dropdata'):
            server.transport.abort()
            await asyncio.sleep(3600)
        if first.startswith('stalldata'):
            await asyncio.sleep(3600)
        if first.startswith('slowdata'):
            await asyncio.sleep(0.3)
        if first.startswith('d554'):
            return '554 5.7.1 Message content rejected'
        if first.startswith('d451'):
            return '451 4.3.0 Try again later'
        with open(self.args.log, 'a') as f:
            f.write(json.dumps({
                'mail_from': envelope.mail_from,
                'mail_options': envelope.mail_options,
                'rcpts': envelope.rcpt_tos,
                'data': envelope.original_content.decode('latin-1'),
                'tls': session.ssl is not None,
            }) + '\n')
        return '250 2.0.0 Ok: queued'


class ScriptedSMTP(SMTP):
    def __init__(self, handler, mode, **kw):
        self.mode = mode
        super().__init__(handler, **kw)

    async def _handle_client(self):
        if self.mode == 'greet421':
            await self.push('421 4.3.2 Service not available, closing transmission channel')
            self.transport.close()
            return
        if self.mode == 'greet554':
            await self.push('554-5.7.1 No SMTP service here')
            await self.push('554 5.7.1 Go away')
            self.transport.close()
            return
        if self.mode == 'greetstall':
            await asyncio.sleep(3600)
            return
        await super()._handle_client()

    async def smtp_EHLO(self, hostname):
        if self.mode == 'longline':
            await self.push('250-' + 'x' * 5000)
            await self.push('250 OK')
            return
        if self.mode == 'mixedcodes':
            await self.push('250-scripted.egress.test')
            await self.push('550 5.0.0 mixed')
            return
        if self.mode == 'noehlo':
            await self.push('502 5.5.2 Error: command not recognized')
            return
        await super().smtp_EHLO(hostname)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--listen', required=True)
    ap.add_argument('--mode', default='normal')
    ap.add_argument('--size', type=int, default=0)
    ap.add_argument('--pipelining', action='store_true')
    ap.add_argument('--tls-cert')
    ap.add_argument('--tls-key')
    ap.add_argument('--log', required=True)
    ap.add_argument('--rcpt-log')
    args = ap.parse_args()
    host, port = args.listen.rsplit(':', 1)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    handler = Handler(args)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return ScriptedSMTP(handler, args.mode, data_size_limit=args.size or None,
                            tls_context=tls, decode_data=False, enable_SMTPUTF8=False,
                            hostname='scripted.egress.test', ident='egress scripted server')

    server = loop.run_until_complete(loop.create_server(factory, host=host, port=int(port)))
    print('listening', args.listen, flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == '__main__':
    sys.exit(main())
