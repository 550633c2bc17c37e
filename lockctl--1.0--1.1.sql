-- lockctl 1.0 -> 1.1: ALTER EXTENSION lockctl UPDATE TO '1.1'
--
-- Every change that 1.1 makes to installed objects is made here as well as
-- in src/*.sql (which build lockctl--1.1.sql), so that an updated database
-- ends with the same catalog as a fresh install; t/ checks that.

\echo Use "ALTER EXTENSION lockctl UPDATE TO '1.1'" to load this file. \quit
