"""The platform's SSH key pair: made once, kept private, shared by every worker process.

The private key is an ed25519 key in OpenSSH format, mode 0600 in a 0700 directory; the public
half sits next to it in `<path>.pub` for people and for the guests' authorized_keys. A key file
that group or others can read is narrowed to 0600 (with a warning) before it is used.

Creation is safe against races between threads and processes: each writer prepares a complete
key in a private temporary file and hard-links it onto the final name, which fails when the name
exists; the loser throws its key away and loads the winner's, so everyone ends with the same key.
"""
import base64
import io
import logging
import os
import secrets
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# paramiko is imported by the functions that make paramiko keys, not here: an API worker that hands its jobs
# to Celery reads the platform's public key (public_key_line) and never loads paramiko's 16 MB.

log = logging.getLogger(__name__)

KEY_COMMENT = "paas-platform"


def load_or_create_keypair(path):
    """(paramiko key, "ssh-ed25519 AAAA... paas-platform") for the private key file at path.

    The file is created (with a new key) when it does not exist.
    """
    path = os.fspath(path)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    _create(path)
    return _load(path)


def host_key_line(pkey):
    """A public key as "type base64", the form host keys are recorded and compared in."""
    return f"{pkey.get_name()} {pkey.get_base64()}"


def parse_host_key_line(line):
    """The paramiko public key of a "type base64 [comment]" line; ValueError when it is not one."""
    fields = (line or "").split()
    if len(fields) < 2:
        raise ValueError("a host key is written as 'type base64'")
    key_type, encoded = fields[0], fields[1]
    import paramiko  # noqa: PLC0415 - paramiko (16 MB) only where a guest is reached

    try:
        blob = base64.b64decode(encoded, validate=True)
        key = paramiko.PKey.from_type_string(key_type, blob)
    except Exception as exc:  # binascii.Error, UnknownKeyType, SSHException, struct errors...
        raise ValueError(f"unreadable {key_type} host key") from exc
    if key.get_name() != key_type:
        raise ValueError(f"the host key says {key_type} but holds a {key.get_name()} key")
    return key


def _public_line(pkey):
    return f"{host_key_line(pkey)} {KEY_COMMENT}"


def public_key_line(path):
    """The platform's public key line ("ssh-ed25519 AAAA... paas-platform"), the key pair made when missing."""
    path = os.fspath(path)
    try:
        data = _read_private(path)
    except FileNotFoundError:
        _create(path)
        data = _read_private(path)
    loaded = _load_private_key(path, data)
    blob = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public = f"{blob.decode('ascii')} {KEY_COMMENT}"
    _ensure_public_file(path, public)
    return public


def _load(path):
    pkey = _parse_private_key(path, _read_private(path))
    public = _public_line(pkey)
    _ensure_public_file(path, public)
    return pkey, public


def _read_private(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"the platform's SSH key {path} is not a regular file")
        if info.st_mode & 0o077:
            log.warning("the platform's SSH key %s was readable by others (mode %03o); narrowed to 0600",
                        path, stat.S_IMODE(info.st_mode))
            os.fchmod(fd, 0o600)
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    finally:
        os.close(fd)
    return data


def _load_private_key(path, data):
    """The cryptography key of an unencrypted OpenSSH (or PEM) private key."""
    try:
        try:
            return serialization.load_ssh_private_key(data, password=None)
        except ValueError:
            return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # No key material in the message: cryptography's texts name the format problem only.
        raise ValueError(f"the platform's SSH key {path} is not an unencrypted private key: {exc}") from None


def _parse_private_key(path, data):
    """The paramiko key of an unencrypted OpenSSH (or PEM) private key; ed25519, ECDSA or RSA."""
    loaded = _load_private_key(path, data)
    import paramiko  # noqa: PLC0415 - paramiko (16 MB) only where a guest is reached

    text = data.decode("ascii", errors="replace")
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return paramiko.Ed25519Key(file_obj=io.StringIO(text))
    if isinstance(loaded, ec.EllipticCurvePrivateKey):
        return paramiko.ECDSAKey.from_private_key(io.StringIO(text))
    if isinstance(loaded, rsa.RSAPrivateKey):
        return paramiko.RSAKey.from_private_key(io.StringIO(text))
    raise ValueError(f"the platform's SSH key {path} is of an unsupported type")


def _create(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        _write_new(tmp, private, 0o600)
        try:
            os.link(tmp, path)  # atomic, and refuses to replace: the first writer wins
        except FileExistsError:
            log.info("another process created the platform's SSH key %s first; using its key", path)
            return
        _fsync_directory(directory)
        log.info("created the platform's SSH key %s", path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _ensure_public_file(path, public):
    """Write <path>.pub when it is missing or says something else (atomically, by rename)."""
    pub_path = path + ".pub"
    wanted = (public + "\n").encode()
    try:
        with open(pub_path, "rb") as f:
            if f.read() == wanted:
                return
    except FileNotFoundError:
        pass
    tmp = f"{pub_path}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        _write_new(tmp, wanted, 0o644)
        os.replace(tmp, pub_path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _write_new(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away from a 0644 public key
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
