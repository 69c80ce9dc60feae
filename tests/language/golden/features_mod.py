"""A feature module for the E210 golden test."""


def first_token(example):
    return example.tokens[0]
