"""The MAIL and RCPT parameters postar accepts, checked into typed values.

RFC 1870 SIZE, RFC 6152 BODY=8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN
(RET, ENVID, NOTIFY, ORCPT), RFC 4954 §5 AUTH. Each check returns the value or
the reply that refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from postar.smtp import replies
from postar.smtp.parser import decode_xtext, is_digits
from postar.smtp.replies import Reply

_NOTIFY_VALUES = {"SUCCESS", "FAILURE", "DELAY"}


@dataclass(frozen=True)
class MailParams:
    size: int = 0
    smtputf8: bool = False
    envid: str = ""
    ret: str = ""


@dataclass(frozen=True)
class RcptParams:
    notify: str = ""
    orcpt: str = ""


def check_mail_params(params: dict[str, str], size_limit: int) -> MailParams | Reply:
    size, smtputf8, envid, ret = 0, False, "", ""
    for keyword, value in params.items():
        if keyword == "SIZE":
            if not is_digits(value) or len(value) > 20:
                return replies.BAD_SYNTAX("Error: bad SIZE parameter")
            size = int(value)
            if size > size_limit:
                return replies.MESSAGE_TOO_BIG
        elif keyword == "BODY":
            if value.upper() not in ("7BIT", "8BITMIME"):
                return replies.BAD_SYNTAX("Error: BODY must be 7BIT or 8BITMIME")
        elif keyword == "SMTPUTF8":
            if value:
                return replies.BAD_SYNTAX("Error: SMTPUTF8 takes no value")
            smtputf8 = True
        elif keyword == "RET":
            if value.upper() not in ("FULL", "HDRS"):
                return replies.BAD_SYNTAX("Error: RET must be FULL or HDRS")
            ret = value.upper()
        elif keyword == "ENVID":
            decoded = decode_xtext(value)
            if decoded is None or len(value) > 100:  # RFC 3461 §4.4
                return replies.BAD_SYNTAX("Error: bad ENVID parameter")
            envid = decoded
        elif keyword == "AUTH":
            continue  # RFC 4954 §5: may be ignored; we trust only our own AUTH
        else:
            return replies.UNKNOWN_PARAMETER(f"Error: unsupported MAIL parameter {keyword}")
    return MailParams(size, smtputf8, envid, ret)


def check_rcpt_params(params: dict[str, str]) -> RcptParams | Reply:
    notify, orcpt = "", ""
    for keyword, value in params.items():
        if keyword == "NOTIFY":
            words = set(value.upper().split(","))
            if words != {"NEVER"} and not (words and words <= _NOTIFY_VALUES):
                return replies.BAD_SYNTAX("Error: NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")
            notify = value.upper()
        elif keyword == "ORCPT":
            addr_type, semicolon, xtext = value.partition(";")
            decoded = decode_xtext(xtext)
            if not semicolon or not addr_type or decoded is None or len(value) > 500:
                return replies.BAD_SYNTAX("Error: bad ORCPT parameter")
            orcpt = f"{addr_type};{decoded}"
        else:
            return replies.UNKNOWN_PARAMETER(f"Error: unsupported RCPT parameter {keyword}")
    return RcptParams(notify, orcpt)
