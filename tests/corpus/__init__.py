"""Corpora of model files for the scanners: malicious ones (malicious.py) and benign ones (benign.py).

Every malicious file is assembled here byte by byte (or by pickle.dumps of an object whose
__reduce__ names the callable): nothing in this package ever unpickles, imports the payload or
runs it. The payloads only touch a file named pwned-by-pickle in the working directory, so a
test that runs them inside the introspection sandbox fixture would notice.

    from tests.corpus.malicious import malicious_corpus
    from tests.corpus.benign import benign_corpus

Each returns a list of Sample(name, data, kind, ...); `kind` is the format kind the file is
declared as when it is handed to registry.introspection.dispatch.introspect.
"""

from tests.corpus.sample import Sample

__all__ = ["Sample"]
