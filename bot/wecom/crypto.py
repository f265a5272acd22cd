"""Callback crypto: a small typed wrapper over wechatpy's WeChatCrypto, plus hardened XML parsing."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.errors import MalformedCallback, WeComCryptoError


def parse_xml(data: bytes | str) -> Element:
    """Parse untrusted XML: no DTD, no entities, no external references (billion laughs, XXE)."""
    try:
        root: Element = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise MalformedCallback(f"forbidden XML construct ({type(err).__name__})") from err
    except (ParseError, ValueError) as err:
        raise MalformedCallback(f"not well-formed XML ({err})") from err
    return root


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: sha1 hex of the sorted, concatenated four strings."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


class CallbackCrypto:
    """Verify and decrypt WeCom callbacks for one app (token, EncodingAESKey, CorpID as ReceiveId)."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise WeComCryptoError("EncodingAESKey must be exactly 43 characters")
        self.token = token
        self.corp_id = corp_id
        try:
            self._crypto: Any = WeChatCrypto(token, encoding_aes_key, corp_id)
        except Exception as err:  # wechatpy asserts the decoded key is 32 bytes
            raise WeComCryptoError("EncodingAESKey is not valid base64 for a 32-byte AES key") from err

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.strip().lower().encode()):
            raise WeComCryptoError("msg_signature does not match: wrong token or tampered message")

    def _decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        try:
            plain = self._crypto.decrypt_message({"Encrypt": encrypt}, msg_signature.strip().lower(), timestamp, nonce)
        except InvalidSignatureException as err:
            raise WeComCryptoError("msg_signature does not match: wrong token or tampered message") from err
        except InvalidCorpIdException as err:
            raise WeComCryptoError(f"message is not addressed to corp id {self.corp_id!r}") from err
        except Exception as err:  # base64, AES block size, padding, length prefix, UTF-8: all mean "not ours"
            raise WeComCryptoError(f"cannot decrypt message ({type(err).__name__}): wrong EncodingAESKey?") from err
        if not isinstance(plain, str):
            raise WeComCryptoError("cannot decrypt message: unexpected plaintext type")
        return plain

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification (GET): the decrypted echostr, to be answered as the whole body."""
        # A '+' sent unescaped in the query arrives as a space; base64 never contains spaces.
        return self._decrypt(msg_signature, timestamp, nonce, echostr.replace(" ", "+"))

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str, body: bytes) -> bytes:
        """A POSTed callback body `<xml><Encrypt>...</Encrypt></xml>` → the plaintext message XML."""
        return self.decrypt_field(msg_signature, timestamp, nonce, encrypted_field(body))

    def decrypt_field(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> bytes:
        """Like decrypt, for an envelope already parsed (its Encrypt text)."""
        return self._decrypt(msg_signature, timestamp, nonce, encrypt).encode("utf-8")

    def encrypt(self, xml: str, nonce: str, timestamp: str | int | None = None) -> str:
        """The encrypted, signed envelope WeCom would POST (and a passive reply's format)."""
        ts = str(timestamp if timestamp is not None else int(time.time()))
        try:
            out = self._crypto.encrypt_message(xml, nonce, ts)
        except Exception as err:
            raise WeComCryptoError(f"cannot encrypt message ({type(err).__name__})") from err
        return str(out)


def encrypted_field(body: bytes) -> str:
    """The Encrypt text of the outer envelope, parsed with defusedxml."""
    root = parse_xml(body)
    node = root.find("Encrypt")
    if node is None or not (node.text or "").strip():
        raise MalformedCallback("no <Encrypt> element")
    return (node.text or "").strip()


def check_timestamp(timestamp: str, now: datetime, max_skew_seconds: int) -> None:
    """Refuse a callback whose timestamp is further than max_skew_seconds from now (0 disables the check)."""
    try:
        ts = int(timestamp)
    except ValueError as err:
        raise WeComCryptoError(f"timestamp {timestamp[:20]!r} is not an integer") from err
    if max_skew_seconds and abs(now.timestamp() - ts) > max_skew_seconds:
        raise WeComCryptoError(
            f"timestamp {ts} is {int(now.timestamp()) - ts} s from now, more than {max_skew_seconds} s: replay?"
        )
