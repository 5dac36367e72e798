package org.tensorflow.lite;
public interface Tensor { String name(); int numBytes(); }
