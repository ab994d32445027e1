"""Lexical retrieval: the analyzer that turns text into terms (and, with the hybrid-search
work, postings and BM25 scoring over them)."""

from .analyzer import Analyzer

__all__ = ["Analyzer"]
