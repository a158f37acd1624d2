"""6. Where results live: Zarr stores that stream, resume and grow.

``zarr_store`` lays out a store and writes blocks (outputs first, status last), with
the arrays' shapes, chunks and codecs from ``arrays``;
``lifecycle`` is what a run does to a store from start to finish; ``target`` tells what
is at a path before anything is written; ``resume`` checks that a run continues a store;
``lease`` keeps a store to one writer; ``codecs`` picks output codecs and refuses those
that unpickle; ``keys`` reads and writes raw keys (exclusive creates); ``trust`` records
the specs this user's ensembles wrote; ``provenance`` says how a store was made (what a
store holds, for ``ensembles info``, is :mod:`ensembles.describe`, at the top: it reads
adaptive runs' records too).
"""
